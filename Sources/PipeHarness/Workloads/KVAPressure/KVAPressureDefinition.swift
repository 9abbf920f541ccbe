import PipeEngine
import PipeResults

extension WorkloadKind {
    /// A stream after idle pipes have filled the engine's KVA to a tier.
    public static let kvaPressure = KVAPressureWorkload.kind
}

extension Workload {
    public static func kvaPressure(_ config: KVAPressureConfig) -> Workload { KVAPressureWorkload.workload(config) }
}

extension KVAPressureWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "kva-pressure")
    public static let purpose = "stream under a KVA tier"
    /// 0 for the exhausted tier, where no pipe can be made (see the result's `workloadError`).
    public static let metric = WorkloadMetric.bytesPerSecond("throughput")

    /// Unset on a kva-pressure point: tier 0, no ballast.
    public static let kvaTier = WorkloadParameter("kva-tier", kind: .integer, group: "engine", short: "kva",
                                                  refusedElsewhere: true) { text in
        let v = try WorkloadParameter.wholeNumber(text, "--kva-tier")
        guard (0...100).contains(v) else { throw SweepError("--kva-tier \(text): a tier is a percentage of maxpipekva, 0 to 100") }
        return String(v)
    }
    public static let parameters = [kvaTier]
    public static let baselineIgnoredColumns: Set<String> = ["kva_tier_pct"]

    /// A small arena (4 MiB), so that ballast is cheap.
    public static func engineDefaults(_ configuration: inout PipeConfiguration) {
        configuration.maxpipekva = KVAPressureConfig.defaultMaxpipekva
    }

    public static func normalize(_ point: inout SweepPoint) {
        if point.kvaTier == nil { point.kvaTier = 0 }
    }

    /// `--kva-tier` alone means this workload; beside other workloads, it must be among them.
    public static func prepare(_ sweep: SweepSpecification, base: inout SweepPoint) throws {
        try implied(by: .kvaTier, sweep, base: &base)
    }

    public static func validate(_ point: SweepPoint) throws {
        if point.transport != .engine {
            throw SweepError("--workload kva-pressure fills the engine's KVA, so it runs on --transport engine only (got \(point.transport.rawValue))")
        }
    }

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> KVAPressureConfig {
        KVAPressureConfig(tierPercent: point.kvaTier ?? 0, stream: StreamWorkload.configuration(point, options: options),
                          maxpipekva: point.engineConfiguration.maxpipekva)
    }

    public static func measure(_ config: KVAPressureConfig) throws -> KVAPressureResult {
        let r = try run(config)
        if config.stream.verify, let s = r.stream { try s.checkIntegrity() }
        return r
    }

    public static func probeCPUs(_ config: KVAPressureConfig) -> (Int, Int)? { StreamWorkload.probeCPUs(config.stream) }

    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {
        row.int("kva_tier_pct", point.kvaTier)
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        var rows = [["configuration", "tier %", "band", "pipekva %", "GB/s", "95% CI", "buffer start-end", "allocfail"]]
        for g in groups {
            let (m, ci) = s.interval(g.samples("throughput_GBps"), format: "%.3f")
            let pct = g.median("kva_pipekva_before_pct").map { String(format: "%.1f", $0) } ?? ""
            let start = Int(s.value(g, "kva_buffer_size_start_B")).map(SizeSpec.format) ?? "-"
            let end = Int(s.value(g, "kva_buffer_size_end_B")).map(SizeSpec.format) ?? "-"
            rows.append(s.row([g.label, s.value(g, "kva_tier_pct"), s.value(g, "kva_band"), pct, m, ci, "\(start)-\(end)",
                               s.value(g, "kva_pipeallocfail")]))
        }
        return "KVA pressure: engine stream after ballast pipes fill pipekva to a tier of maxpipekva (GB/s, higher is better)\n"
            + TextTable.render(rows, leftAligned: [0, 2])
    }
}

extension SweepAxis {
    public static let kvaTier = SweepAxis.parameter(KVAPressureWorkload.kvaTier)
}

extension SweepPoint {
    /// kva-pressure: pipekva filled to this percentage of maxpipekva first.
    public var kvaTier: Int? {
        get { integer(KVAPressureWorkload.kvaTier) }
        set { self[KVAPressureWorkload.kvaTier] = newValue.map(String.init) }
    }
}

extension Repetition {
    /// The kva-pressure result of this repetition, if it is one.
    public var kvaPressure: KVAPressureResult? { result as? KVAPressureResult }
}

extension KVAPressureResult: WorkloadResult {
    public var value: Double { bytesPerSecond }
    public var timedNs: Int64? { stream?.wallNs }

    public func record(into row: inout ResultsRow) {
        stream?.record(into: &row)
        row.set("kva_band", band.rawValue)
        row.int("kva_ballast_pipes", ballastPipes)
        row.number("kva_pipekva_before_pct", countersBefore.pipekvaPercent)
        row.int("kva_buffer_size_start_B", bufferSizeAtCreation)
        row.list("kva_buffer_sizes_seen", bufferSizesSeen)
        row.int("kva_buffer_size_end_B", bufferSizeAtEnd)
        row.int("kva_pipefragretry", countersAfter.pipefragretry)
        row.int("kva_pipeallocfail", countersAfter.pipeallocfail)
        row.int("kva_piperesizefail", countersAfter.piperesizefail)
        row.int("kva_resizes", countersAfter.resizes - countersBefore.resizes)
        row.set("kva_workload_error", workloadError)
        if stream == nil { row.number("throughput_GBps", 0) }
    }
}
