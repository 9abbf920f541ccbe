import PipeResults
extension WorkloadKind {
    /// W writers and R readers on one pipe.
    public static let contend = ContendWorkload.kind
}

extension Workload {
    public static func contend(_ config: ContendConfig) -> Workload { ContendWorkload.workload(config) }
}

extension ContendWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "contend")
    public static let purpose = "W writers and R readers on one pipe"
    public static let metric = WorkloadMetric.bytesPerSecond("aggregate throughput")

    public static let readers = WorkloadParameter("readers", kind: .integer, default: "1") { text in
        let v = try WorkloadParameter.positive(text, "--readers")
        guard v <= 512 else { throw SweepError("--readers \(text): at most 512 readers") }
        return String(v)
    }
    public static let socket = WorkloadParameter("socket", kind: .text, default: UnixSocketType.seqpacket.rawValue) { text in
        guard let t = UnixSocketType(rawValue: text) else {
            throw SweepError("--socket '\(text)' is unknown; use one of: \(UnixSocketType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return t.rawValue
    }
    /// Unset: every writer placed as --writer-cpu says, every reader as --reader-cpu.
    public static let threadCPUs = WorkloadParameter(
        "thread-cpus", kind: .text, group: "placement", short: "cpus",
        expand: { [try ThreadCPUs.parse($0).description] }
    ) { try ThreadCPUs.parse($0).description }
    /// `--writers` is fanin's: W writer threads here, K writers with a pipe each there.
    public static let parameters = [FanInWorkload.writers, readers, socket, threadCPUs]
    public static let alwaysLabelled: [SweepAxis] = [.writers, .readers]
    /// A unix-socket's type is its own: it is compared with the pipe all the same.
    public static let baselineIgnoredColumns: Set<String> = ["socket"]

    public static func concurrentStreams(_ point: SweepPoint) -> Int { point.writers }

    public static func normalize(_ point: inout SweepPoint) {
        if point.transport != .unixSocket { point[socket] = nil }
    }

    public static func validate(_ point: SweepPoint) throws {
        if !ContendConfig.transports.contains(point.transport) {
            throw SweepError("--workload contend runs over --transport \(ContendConfig.transports.map(\.rawValue).joined(separator: ", ")) (got \(point.transport.rawValue))")
        }
        try ThreadCPUs.validate(point)
        let socket = point.socketType
        if let problem = ContendConfig.recordProblem(
            recordSize: point.writeSize, readSize: point.effectiveReadSize, verify: point.verify,
            atomicWriteLimit: ContendConfig.atomicWriteLimit(point.transport, socket: socket),
            keepsMessageBoundaries: point.transport == .unixSocket && socket == .seqpacket) {
            throw SweepError("--write-size \(SizeSpec.format(point.writeSize)), --read-size \(SizeSpec.format(point.effectiveReadSize)): \(problem)")
        }
    }

    public static func namedCPUs(_ point: SweepPoint) -> [(SweepAxis, Int)] {
        point.threadCPUs.map { $0.named.map { (.threadCPUs, $0) } } ?? []
    }

    public static func placements(_ point: SweepPoint) -> [Placement] {
        [point.placement] + point.threadCPUList(threads: point.writers + point.readers).map { Placement(writerCPU: $0) }
    }

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> ContendConfig {
        let record = point.writeSize
        return ContendConfig(
            transport: point.transport, options: options, writers: point.writers, readers: point.readers,
            recordSize: record, recordsPerWriter: max(1, (point.effectiveTotal + record - 1) / record),
            readSize: point.effectiveReadSize, socket: point.socketType, verify: point.verify,
            placement: point.placement, threadCPUs: point.threadCPUList(threads: point.writers + point.readers))
    }

    public static func measure(_ config: ContendConfig) throws -> ContendResult {
        let r = try run(config).result
        if config.verify {
            if let v = r.violation { throw HarnessError.records(v.description) }
        }
        return r
    }

    public static func probeCPUs(_ config: ContendConfig) -> (Int, Int)? {
        guard let a = config.writerCPU(0), let b = config.readerCPU(0) else { return nil }
        return (a, b)
    }

    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {
        row.int("writers", point.writers)
        row.int("readers", point.readers)
        row.set("socket", point.transport == .unixSocket ? point[socket] : nil)
        row.set("thread_cpus", point.threadCPUs?.description)
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        var rows = [["configuration", "record", "W×R", "GB/s", "95% CI", "Mrec/s", "enq p50/p99 µs", "deq p50/p99 µs"]
            + s.ratioHeaders + ["enq p99 vs linux-pipe"]]
        func µs(_ g: ResultsSummary.Group, _ a: String, _ b: String) -> String {
            guard let x = g.median(a), let y = g.median(b) else { return "" }
            return String(format: "%.2f/%.2f", x / 1000, y / 1000)
        }
        for g in groups {
            let (m, ci) = s.interval(g.samples("throughput_GBps"), format: "%.3f")
            let rate = g.median("records_per_s").map { String(format: "%.3f", $0 / 1e6) } ?? ""
            rows.append(s.row([g.label, s.size(g, "write_size_B"), "\(s.value(g, "writers"))×\(s.value(g, "readers"))", m, ci, rate,
                               µs(g, "enqueue_p50_ns", "enqueue_p99_ns"), µs(g, "dequeue_p50_ns", "dequeue_p99_ns")]
                + s.ratioCells(g, "throughput_GBps") + [s.ratioText(g, s.baseline(for: g), "enqueue_p99_ns")]))
        }
        return "Contend: W writers and R readers on one pipe, one record per write (aggregate GB/s, higher is better; ratio to linux-pipe = median of the per-round ratios; enqueue p99 ratio: lower is better)\n"
            + TextTable.render(rows)
    }
}

extension SweepAxis {
    public static let readers = SweepAxis.parameter(ContendWorkload.readers)
    public static let socket = SweepAxis.parameter(ContendWorkload.socket)
    public static let threadCPUs = SweepAxis.parameter(ContendWorkload.threadCPUs)
}

extension SweepPoint {
    /// contend: R reader threads.
    public var readers: Int {
        get { integer(ContendWorkload.readers)! }
        set { self[ContendWorkload.readers] = String(newValue) }
    }
    /// contend over unix-socket: the socket type.
    public var socketType: UnixSocketType {
        self[ContendWorkload.socket].flatMap(UnixSocketType.init(rawValue:)) ?? .seqpacket
    }
    /// contend, jobserver: where the threads run; nil places them as --writer-cpu/--reader-cpu say.
    public var threadCPUs: ThreadCPUs? {
        get { self[ContendWorkload.threadCPUs].flatMap { try? ThreadCPUs.parse($0) } }
        set { self[ContendWorkload.threadCPUs] = newValue?.description }
    }
    /// One CPU per thread from `threadCPUs` (empty when it is unset).
    public func threadCPUList(threads: Int) -> [Int] {
        threadCPUs?.cpus(threads: threads, usable: Topology.usableCPUList()) ?? []
    }
}

/// Where the threads of a contend or jobserver run: `spread` (round-robin over the usable
/// CPUs, in thread order: writers, then readers) or a list of CPUs taken round-robin the same
/// way (`0,0,1`). Unset, every writer runs where `--writer-cpu` says and every reader where
/// `--reader-cpu` does: packed, two CPUs at most.
public enum ThreadCPUs: Sendable, Hashable, CustomStringConvertible {
    case spread
    case explicit([Int])

    public static func parse(_ text: String) throws -> ThreadCPUs {
        let t = text.trimmingWhitespace()
        if t == "spread" { return .spread }
        let cpus = t.split(separator: ",", omittingEmptySubsequences: false).map { Int(String($0).trimmingWhitespace()) }
        guard !cpus.isEmpty, cpus.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw SweepError("--thread-cpus '\(text)': give CPUs separated by commas, taken round-robin by the threads (writers first), e.g. 0,1, or spread")
        }
        return .explicit(cpus.map { $0! })
    }

    public var description: String {
        switch self {
        case .spread: return "spread"
        case .explicit(let xs): return xs.map(String.init).joined(separator: ",")
        }
    }

    /// The CPUs named (none for spread).
    public var named: [Int] {
        if case .explicit(let xs) = self { return xs }
        return []
    }

    /// One CPU for each of `threads` threads.
    public func cpus(threads: Int, usable: [Int]) -> [Int] {
        let list: [Int]
        switch self {
        case .spread: list = usable
        case .explicit(let xs): list = xs
        }
        guard !list.isEmpty else { return [] }
        return (0..<threads).map { list[$0 % list.count] }
    }

    /// --thread-cpus places the threads itself: not with the CPU flags or a preset.
    static func validate(_ point: SweepPoint) throws {
        guard point.threadCPUs != nil else { return }
        if point.writerCPU != nil || point.readerCPU != nil {
            throw SweepError("--thread-cpus and --writer-cpu/--reader-cpu both place the threads; give one or the other")
        }
        if let preset = point.placementPreset {
            throw SweepError("--thread-cpus and --placement \(preset.rawValue) both place the threads; give one or the other")
        }
    }
}

extension ContendResult: WorkloadResult {
    public var value: Double { bytesPerSecond }
    public var timedNs: Int64? { wallNs }

    public func record(into row: inout ResultsRow) {
        row.throughput(bytesPerSecond: bytesPerSecond, wallNs: wallNs, bytes: bytesReceived,
                       writerCPUNs: writerCPUNs.reduce(0, +), readerCPUNs: readerCPUNs.reduce(0, +), cpuNsPerByte: cpuNsPerByte,
                       writeCalls: writeCalls, readCalls: readCalls)
        row.streams(perWriterBytesPerSecond)
        row.int("records", records)
        row.number("records_per_s", recordsPerSecond)
        row.int("atomic_limit_B", atomicWriteLimit == Int.max ? nil : atomicWriteLimit)
        row.set("record_check", verified ? (atomicWriteLimit.map { recordSize <= $0 } == true ? "whole" : "bytes") : nil)
        row.latency("enqueue", enqueue)
        row.latency("dequeue", dequeue)
        row.list("writer_cpus_seen", writerCPUsSeen.flatMap { $0 })
        row.list("reader_cpus_seen", readerCPUsSeen.flatMap { $0 })
        row.bool("integrity_ok", verified ? integrityOK : nil)
        row.memory(writer: writerMemory, reader: readerMemory, arena: arenaMemory)
        row.activity(writer: writerActivity, reader: readerActivity, engine: transport == TransportKind.engine.rawValue)
    }
}

extension ResultsRow {
    /// The `PREFIX_p50_ns` … `PREFIX_max_ns` columns of one latency histogram
    /// (`ResultsSchema.latencyColumns`).
    mutating func latency(_ prefix: String, _ l: LatencySummary) {
        for (suffix, v) in [("p50", l.p50), ("p90", l.p90), ("p99", l.p99), ("p999", l.p999), ("max", l.max)] {
            int("\(prefix)_\(suffix)_ns", l.count > 0 ? v : nil)
        }
    }
}

extension Repetition {
    /// The contend result of this repetition, if it is one.
    public var contend: ContendResult? { result as? ContendResult }
}
