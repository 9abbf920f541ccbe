import PipeResults
extension WorkloadKind {
    /// Round-trip latency of a message and its echo.
    public static let pingpong = PingPongWorkload.kind
}

extension Workload {
    public static func pingpong(_ config: PingPongConfig) -> Workload { PingPongWorkload.workload(config) }
}

extension PingPongWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "pingpong")
    public static let purpose = "round-trip latency"
    public static let metric = WorkloadMetric(name: "p50 round trip", unit: "ns", higherIsBetter: false)

    public static let messageSize = WorkloadParameter("message-size", kind: .size, short: "msg", default: "1") {
        SizeSpec.format(try WorkloadParameter.positiveSize($0, "--message-size"))
    }
    public static let iterations = WorkloadParameter("iterations", kind: .integer, default: "10000") {
        String(try WorkloadParameter.positive($0, "--iterations"))
    }
    /// Unset: min(1000, iterations / 10).
    public static let warmupIterations = WorkloadParameter("warmup-iterations", kind: .integer) {
        String(try WorkloadParameter.nonNegative($0, "--warmup-iterations"))
    }
    public static let rate = WorkloadParameter("rate", kind: .number) { text in
        guard let r = Double(text), r > 0, r.isFinite else {
            throw SweepError("--rate '\(text)': give messages per second as a positive number, e.g. --rate 10000")
        }
        return rateText(r)
    }
    /// A rate's canonical text: a whole number without ".0" (`10000`), else Swift's shortest.
    static func rateText(_ r: Double) -> String {
        r == r.rounded() && abs(r) < 1e15 ? String(Int(r)) : String(r)
    }
    public static let parameters = [messageSize, iterations, warmupIterations, rate]
    public static let usesStreamSizes = false

    public static func validate(_ point: SweepPoint) throws {
        if point.transport == .memcpy {
            throw SweepError("--transport memcpy has no pingpong (it is one thread copying); use it with --workload stream")
        }
    }

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> PingPongConfig {
        PingPongConfig(
            transport: point.transport, options: options, messageSize: point.messageSize,
            iterations: point.iterations, warmupIterations: point.effectiveWarmupIterations,
            verify: point.verify, ratePerSecond: point.rate, placement: point.placement)
    }

    public static func measure(_ config: PingPongConfig) throws -> PingPongResult {
        let r = try run(config).result
        if config.verify, let m = r.firstMismatch {
            throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual)
        }
        return r
    }

    public static func probeCPUs(_ config: PingPongConfig) -> (Int, Int)? {
        guard let a = config.clientCPU, let b = config.serverCPU else { return nil }
        return (a, b)
    }

    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {
        row.int("message_size_B", point.messageSize)
        row.int("iterations", point.iterations)
        row.int("warmup_iterations", point.effectiveWarmupIterations)
        row.number("rate_per_s", point.rate)
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        var rows = [["configuration", "message", "p50 µs", "95% CI", "p99 µs", "p99.9 µs"] + s.ratioHeaders]
        for g in groups {
            let (m, ci) = s.interval(g.samples("p50_ns"), scale: 1000, format: "%.2f")
            let p99 = g.median("p99_ns").map { String(format: "%.2f", $0 / 1000) } ?? ""
            let p999 = g.median("p999_ns").map { String(format: "%.2f", $0 / 1000) } ?? ""
            rows.append(s.row([g.label, s.size(g, "message_size_B"), m, ci, p99, p999] + s.ratioCells(g, "p50_ns")))
        }
        return "Pingpong round trip (µs, lower is better; ratio to linux-pipe = median of the per-round p50 ratios, 95% CI)\n"
            + TextTable.render(rows)
    }
}

extension SweepAxis {
    public static let messageSize = SweepAxis.parameter(PingPongWorkload.messageSize)
    public static let iterations = SweepAxis.parameter(PingPongWorkload.iterations)
    public static let warmupIterations = SweepAxis.parameter(PingPongWorkload.warmupIterations)
    public static let rate = SweepAxis.parameter(PingPongWorkload.rate)
}

extension SweepPoint {
    /// pingpong: bytes each way.
    public var messageSize: Int {
        get { size(PingPongWorkload.messageSize)! }
        set { self[PingPongWorkload.messageSize] = SizeSpec.format(newValue) }
    }
    /// pingpong: round trips recorded.
    public var iterations: Int {
        get { integer(PingPongWorkload.iterations)! }
        set { self[PingPongWorkload.iterations] = String(newValue) }
    }
    /// pingpong: round trips run first; nil: min(1000, iterations / 10).
    public var warmupIterations: Int? {
        get { integer(PingPongWorkload.warmupIterations) }
        set { self[PingPongWorkload.warmupIterations] = newValue.map(String.init) }
    }
    public var effectiveWarmupIterations: Int { warmupIterations ?? min(1000, iterations / 10) }
    /// pingpong: a fixed rate in messages per second; nil: closed loop.
    public var rate: Double? {
        get { self[PingPongWorkload.rate].flatMap { Double($0) } }
        set { self[PingPongWorkload.rate] = newValue.map(PingPongWorkload.rateText) }
    }
}

extension PingPongResult: WorkloadResult {
    public var value: Double { Double(latency.p50) }

    public func record(into row: inout ResultsRow) {
        row.int("wall_ns", wallNs)
        row.int("writer_cpu_ns", clientCPUNs)
        row.int("reader_cpu_ns", serverCPUNs)
        row.list("writer_cpus_seen", clientCPUsSeen)
        row.list("reader_cpus_seen", serverCPUsSeen)
        row.bool("integrity_ok", verified ? integrityOK : nil)
        let l = latency
        row.int("rtt_count", l.count)
        row.int("rtt_min_ns", l.min)
        row.int("p50_ns", l.p50)
        row.int("p90_ns", l.p90)
        row.int("p99_ns", l.p99)
        row.int("p999_ns", l.p999)
        row.int("p9999_ns", l.p9999)
        row.int("rtt_max_ns", l.max)
        row.number("rtt_mean_ns", l.mean)
        row.int("late_sends", lateSends)
        row.memory(writer: clientMemory, reader: serverMemory, arena: arenaMemory)
        row.activity(writer: clientActivity, reader: serverActivity, engine: transport == TransportKind.engine.rawValue)
    }
}

extension Repetition {
    /// The pingpong result of this repetition, if it is one.
    public var pingpong: PingPongResult? { result as? PingPongResult }
}
