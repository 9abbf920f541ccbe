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
        for workload in WorkloadKind.registered { try workload.prepare(self, base: &base) }
        // Dropped from the points it does not apply to, refused if it applies to none.
        if values(of: .kernelPipeSize) != nil {
            let ts = values(of: .transport) ?? [base.transport.rawValue]
            let kernel = SweepPoint.kernelPipeTransports.map(\.rawValue)
            let workloads = (values(of: .workload) ?? [base.workload.rawValue]).compactMap(WorkloadKind.init(rawValue:))
            // Some workload of the sweep must run over a kernel pipe (its own validation says).
            let overKernelPipe = workloads.contains { w in
                var p = base
                p.workload = w
                p.transport = .linuxPipe
                return (try? w.definition.validate(p)) != nil
            }
            guard ts.contains(where: kernel.contains), overKernelPipe else {
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
