import PipeResults
extension WorkloadKind {
    /// GNU make's jobserver: workers passing tokens through one pipe.
    public static let jobserver = JobserverWorkload.kind
}

extension Workload {
    public static func jobserver(_ config: JobserverConfig) -> Workload { JobserverWorkload.workload(config) }
}

extension JobserverWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "jobserver")
    public static let purpose = "make's jobserver: N workers, T tokens in one pipe"
    public static let metric = WorkloadMetric(name: "token hand-offs", unit: "/s", higherIsBetter: true)

    public static let workers = WorkloadParameter("workers", kind: .integer, default: "8") { text in
        let v = try WorkloadParameter.positive(text, "--workers")
        guard v <= 512 else { throw SweepError("--workers \(text): at most 512 workers") }
        return String(v)
    }
    public static let tokens = WorkloadParameter("tokens", kind: .integer, default: "2") { text in
        let v = try WorkloadParameter.positive(text, "--tokens")
        guard v <= JobserverConfig.maxTokens else { throw SweepError("--tokens \(text): at most \(JobserverConfig.maxTokens) tokens") }
        return String(v)
    }
    public static let work = WorkloadParameter("work", kind: .text, default: "10us") { text in
        guard let ns = DurationSpec.nanoseconds(text), ns <= 1_000_000_000 else {
            throw SweepError("--work '\(text)': give the busy work per token as a duration of at most 1s, e.g. 10us, 2ms or 0")
        }
        return DurationSpec.format(ns)
    }
    public static let takes = WorkloadParameter("takes", kind: .integer, default: "20000") { text in
        String(try WorkloadParameter.positive(text, "--takes"))
    }
    /// `--thread-cpus` is contend's: it places the workers the same way.
    public static let parameters = [workers, tokens, work, takes, ContendWorkload.threadCPUs]
    public static let usesStreamSizes = false
    public static let alwaysLabelled: [SweepAxis] = [.workers, .tokens]

    public static func validate(_ point: SweepPoint) throws {
        if !JobserverConfig.transports.contains(point.transport) {
            throw SweepError("--workload jobserver runs over --transport \(JobserverConfig.transports.map(\.rawValue).joined(separator: " or ")) (got \(point.transport.rawValue))")
        }
        try ThreadCPUs.validate(point)
    }

    public static func namedCPUs(_ point: SweepPoint) -> [(SweepAxis, Int)] {
        point.threadCPUs.map { $0.named.map { (.threadCPUs, $0) } } ?? []
    }

    public static func placements(_ point: SweepPoint) -> [Placement] {
        [point.placement] + point.threadCPUList(threads: point.workers).map { Placement(writerCPU: $0) }
    }

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> JobserverConfig {
        JobserverConfig(
            transport: point.transport, options: options, workers: point.workers, tokens: point.tokens,
            workNs: point.workNs, takes: point.takes, verify: point.verify, placement: point.placement,
            threadCPUs: point.threadCPUList(threads: point.workers))
    }

    public static func measure(_ config: JobserverConfig) throws -> JobserverResult {
        let r = try run(config).result
        if config.verify, let e = r.tokenError { throw HarnessError.records(e) }
        return r
    }

    public static func probeCPUs(_ config: JobserverConfig) -> (Int, Int)? {
        guard config.workers > 1, let a = config.workerCPU(0), let b = config.workerCPU(1), a != b else { return nil }
        return (a, b)
    }

    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {
        row.int("workers", point.workers)
        row.int("tokens", point.tokens)
        row.int("work_ns", point.workNs)
        row.int("takes", point.takes)
        row.set("thread_cpus", point.threadCPUs?.description)
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        var rows = [["configuration", "N", "T", "work", "k hand-offs/s", "95% CI", "wait p50/p99 µs", "max/min takes"]
            + s.ratioHeaders + ["max/min vs linux-pipe"]]
        for g in groups {
            let (m, ci) = s.interval(g.samples("handoffs_per_s"), scale: 1000, format: "%.1f")
            let wait: String
            if let a = g.median("token_wait_p50_ns"), let b = g.median("token_wait_p99_ns") {
                wait = String(format: "%.2f/%.2f", a / 1000, b / 1000)
            } else { wait = "" }
            let fair = g.median("fairness_max_min").map { String(format: "%.2f", $0) } ?? ""
            let work = Int64(s.value(g, "work_ns")).map(DurationSpec.format) ?? ""
            rows.append(s.row([g.label, s.value(g, "workers"), s.value(g, "tokens"), work, m, ci, wait, fair]
                + s.ratioCells(g, "handoffs_per_s") + [s.ratioText(g, s.baseline(for: g), "fairness_max_min")]))
        }
        return "Jobserver: N workers take a token from one pipe, work, put it back (thousand hand-offs/s, higher is better; max/min: the most tokens one worker took over the fewest, lower is fairer)\n"
            + TextTable.render(rows)
    }
}

extension SweepAxis {
    public static let workers = SweepAxis.parameter(JobserverWorkload.workers)
    public static let tokens = SweepAxis.parameter(JobserverWorkload.tokens)
    public static let work = SweepAxis.parameter(JobserverWorkload.work)
    public static let takes = SweepAxis.parameter(JobserverWorkload.takes)
}

extension SweepPoint {
    /// jobserver: N workers.
    public var workers: Int {
        get { integer(JobserverWorkload.workers)! }
        set { self[JobserverWorkload.workers] = String(newValue) }
    }
    /// jobserver: T tokens.
    public var tokens: Int {
        get { integer(JobserverWorkload.tokens)! }
        set { self[JobserverWorkload.tokens] = String(newValue) }
    }
    /// jobserver: the busy work per token, ns.
    public var workNs: Int64 {
        get { self[JobserverWorkload.work].flatMap { DurationSpec.nanoseconds($0) } ?? 0 }
        set { self[JobserverWorkload.work] = DurationSpec.format(newValue) }
    }
    /// jobserver: tokens taken per repetition, all workers together.
    public var takes: Int {
        get { integer(JobserverWorkload.takes)! }
        set { self[JobserverWorkload.takes] = String(newValue) }
    }
}

extension JobserverResult: WorkloadResult {
    public var value: Double { handoffsPerSecond }
    public var timedNs: Int64? { wallNs }

    public func record(into row: inout ResultsRow) {
        row.int("wall_ns", wallNs)
        row.int("writer_cpu_ns", workerCPUNs.reduce(0, +))
        row.number("handoffs_per_s", handoffsPerSecond)
        row.number("fairness_max_min", fairness)
        row.int("worker_takes_min", perWorkerTakes.min())
        row.int("worker_takes_max", perWorkerTakes.max())
        row.number("work_measured_ns", workMeasuredNs)
        row.latency("token_wait", tokenWait)
        row.list("writer_cpus_seen", workerCPUsSeen.flatMap { $0 })
        row.bool("integrity_ok", verified ? integrityOK : nil)
        row.activity(writer: workerActivity, reader: nil, engine: transport == TransportKind.engine.rawValue)
    }
}

extension Repetition {
    /// The jobserver result of this repetition, if it is one.
    public var jobserver: JobserverResult? { result as? JobserverResult }
}
