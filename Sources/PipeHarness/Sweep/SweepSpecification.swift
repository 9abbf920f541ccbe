import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// A sweep: for each axis, the values to take (axes not listed keep the base point's value).
public struct SweepSpecification: Sendable {
    public var base: SweepPoint
    public var axes: [(axis: SweepAxis, values: [String])]

    public init(base: SweepPoint = SweepPoint(), axes: [(axis: SweepAxis, values: [String])] = []) {
        self.base = base
        self.axes = axes
    }

    /// Sets an axis from flag or config text (replacing an earlier setting of the same axis).
    public mutating func set(_ axis: SweepAxis, _ texts: [String]) throws {
        var values: [String] = []
        for t in texts { values += try axis.expand(t) }
        values = ListSpec.unique(values)
        guard !values.isEmpty else { throw SweepError("\(axis.flag): no value given") }
        axes.removeAll { $0.axis == axis }
        axes.append((axis, values))
        axes.sort { SweepAxis.allCases.firstIndex(of: $0.axis)! < SweepAxis.allCases.firstIndex(of: $1.axis)! }
    }

    public func values(of axis: SweepAxis) -> [String]? { axes.first { $0.axis == axis }?.values }

    /// Axes with more than one value.
    public var varyingAxes: [SweepAxis] { axes.filter { $0.values.count > 1 }.map(\.axis) }

    /// Every point of the product, labelled, validated, without duplicates. Parameters that
    /// do not apply to a point's workload or transport are dropped, so for instance a
    /// `--write-size` axis does not multiply pingpong points, nor `--mindirect` linux-pipe
    /// points.
    public func points() throws -> [SweepPoint] {
        var base = self.base
        if values(of: .kvaTier) != nil {
            if let workloads = values(of: .workload) {
                guard workloads.contains(WorkloadKind.kvaPressure.rawValue) else {
                    throw SweepError("--kva-tier applies to --workload kva-pressure; add it to --workload or leave out --kva-tier")
                }
            } else {
                base.workload = .kvaPressure   // --kva-tier alone means the kva-pressure workload
            }
        }
        // kqueue is the engine's: in a sweep with Linux transports too it applies to the engine
        // points only (the others poll), but with no engine transport at all it is refused.
        if values(of: .mux)?.contains(FanInMux.kqueue.rawValue) == true,
           !(values(of: .transport) ?? [base.transport.rawValue]).contains(TransportKind.engine.rawValue) {
            let t = (values(of: .transport) ?? [base.transport.rawValue]).joined(separator: ",")
            throw SweepError("--mux kqueue is the engine's; Linux has no kqueue, so --transport \(t) takes --mux poll")
        }
        // Like kqueue: dropped from the points it does not apply to, refused if it applies to none.
        if values(of: .kernelPipeSize) != nil {
            let ts = values(of: .transport) ?? [base.transport.rawValue]
            let kernel = SweepPoint.kernelPipeTransports.map(\.rawValue)
            let workloads = values(of: .workload) ?? [base.workload.rawValue]
            guard ts.contains(where: kernel.contains), workloads.contains(where: { $0 != WorkloadKind.kvaPressure.rawValue }) else {
                throw SweepError("--kernel-pipe-size sets F_SETPIPE_SZ, so it applies to --transport linux-pipe or linux-vmsplice (got \(ts.joined(separator: ",")))")
            }
        }
        let varying = varyingAxes
        var out: [SweepPoint] = []
        var seen = Set<SweepPoint>()
        for combo in SweepMatrix.product(axes.map { ($0.axis.rawValue, $0.values) }) {
            var p = base
            for (name, value) in combo { try p.apply(SweepAxis(rawValue: name)!, value) }
            p = p.normalized()
            p.label = p.describe(varying: varying.filter { p.applies($0) })
            if seen.insert(p).inserted {
                try p.validate()
                out.append(p)
            }
        }
        return out
    }
}
