import PipeResults
extension WorkloadKind {
    /// K writers into one reader that multiplexes their pipes.
    public static let fanin = FanInWorkload.kind
}

extension Workload {
    public static func fanin(_ config: FanInConfig) -> Workload { FanInWorkload.workload(config) }
}

extension FanInWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "fanin")
    public static let purpose = "K writers, one reader multiplexing them"
    public static let metric = WorkloadMetric.bytesPerSecond("aggregate throughput")

    public static let writers = WorkloadParameter("writers", kind: .integer, default: "4") { text in
        let v = try WorkloadParameter.positive(text, "--writers")
        guard v <= 512 else { throw SweepError("--writers \(text): at most 512 writers") }
        return String(v)
    }
    public static let mux = WorkloadParameter("mux", kind: .text, default: FanInMux.poll.rawValue) { text in
        guard let m = FanInMux(rawValue: text) else {
            throw SweepError("--mux '\(text)' is unknown; use one of: \(FanInMux.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return m.rawValue
    }
    public static let parameters = [writers, mux]
    public static let alwaysLabelled: [SweepAxis] = [.writers, .mux]
    /// Linux has only poll, so an engine kqueue fan-in is compared with Linux's poll.
    public static let baselineIgnoredColumns: Set<String> = ["mux"]

    public static func concurrentStreams(_ point: SweepPoint) -> Int { point.writers }

    public static func normalize(_ point: inout SweepPoint) {
        if point.transport != .engine { point.mux = .poll }   // Linux has only poll
    }

    /// kqueue is the engine's: in a sweep with Linux transports too it applies to the engine
    /// points only (the others poll), but with no engine transport at all it is refused.
    public static func prepare(_ sweep: SweepSpecification, base: inout SweepPoint) throws {
        let transports = sweep.values(of: .transport) ?? [base.transport.rawValue]
        if sweep.values(of: .mux)?.contains(FanInMux.kqueue.rawValue) == true,
           !transports.contains(TransportKind.engine.rawValue) {
            throw SweepError("--mux kqueue is the engine's; Linux has no kqueue, so --transport \(transports.joined(separator: ",")) takes --mux poll")
        }
    }

    public static func validate(_ point: SweepPoint) throws {
        if !FanInConfig.transports.contains(point.transport) {
            throw SweepError("--workload fanin runs over --transport \(FanInConfig.transports.map(\.rawValue).joined(separator: " or ")) (got \(point.transport.rawValue))")
        }
        if point.mux == .kqueue && point.transport != .engine {
            throw SweepError("--mux kqueue is the engine's; Linux has no kqueue, so --transport \(point.transport.rawValue) takes --mux poll")
        }
    }

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> FanInConfig {
        FanInConfig(
            transport: point.transport, options: options, writers: point.writers, bytesPerWriter: point.effectiveTotal,
            writeSize: point.writeSize, readSize: point.effectiveReadSize, mux: point.mux, verify: point.verify,
            placement: point.placement)
    }

    public static func measure(_ config: FanInConfig) throws -> FanInResult {
        let r = try run(config)
        if config.verify {
            if let m = r.mismatches.first?.mismatch {
                throw HarnessError.integrity(offset: m.offset, expected: m.expected, actual: m.actual)
            }
            if let short = r.perWriterBytes.first(where: { $0 != r.bytesPerWriter }) {
                throw HarnessError.unexpectedEOF(expected: r.bytesPerWriter, received: short)
            }
        }
        return r
    }

    public static func probeCPUs(_ config: FanInConfig) -> (Int, Int)? {
        guard let a = config.placement.writerCPU, let b = config.placement.readerCPU else { return nil }
        return (a, b)
    }

    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {
        row.int("writers", point.writers)
        row.set("mux", point.mux.rawValue)
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        let rows = PairsWorkload.multiStreamRows(groups, shape: "writers", extraHeaders: ["mux", "KiB/call"], extra: { [s] g in
            // Bytes delivered per poll/kevent call: how much each wake-up carried.
            let perCall = zip(g.samples("bytes_B"), g.samples("mux_calls")).map { $1 > 0 ? $0 / $1 / 1024 : 0 }
            return [s.value(g, "mux"), perCall.isEmpty ? "" : String(format: "%.1f", Statistics.median(perCall))]
        }, &s)
        return "Fan-in: K writers, one reader multiplexing their pipes (aggregate GB/s, higher is better; ratio to linux-pipe poll = median of the per-round ratios)\n"
            + TextTable.render(rows)
    }
}

extension SweepAxis {
    public static let writers = SweepAxis.parameter(FanInWorkload.writers)
    public static let mux = SweepAxis.parameter(FanInWorkload.mux)
}

extension SweepPoint {
    /// fanin: K writers into one reader.
    public var writers: Int {
        get { integer(FanInWorkload.writers)! }
        set { self[FanInWorkload.writers] = String(newValue) }
    }
    /// fanin: how the reader waits for ready pipes.
    public var mux: FanInMux {
        get { self[FanInWorkload.mux].flatMap(FanInMux.init(rawValue:)) ?? .poll }
        set { self[FanInWorkload.mux] = newValue.rawValue }
    }
}

extension FanInResult: WorkloadResult {
    public var value: Double { aggregateBytesPerSecond }
    public var timedNs: Int64? { wallNs }

    public func record(into row: inout ResultsRow) {
        row.throughput(bytesPerSecond: aggregateBytesPerSecond, wallNs: wallNs, bytes: bytesReceived,
                       writerCPUNs: writerCPUNs.reduce(0, +), readerCPUNs: readerCPUNs, cpuNsPerByte: cpuNsPerByte,
                       writeCalls: writeCalls, readCalls: readCalls)
        row.streams(perWriterBytesPerSecond)
        row.int("mux_calls", muxCalls)
        row.int("ready_events", readyEvents)
        row.int("empty_reads", emptyReads)
        row.list("writer_cpus_seen", writerCPUsSeen.flatMap { $0 })
        row.list("reader_cpus_seen", readerCPUsSeen)
        row.bool("integrity_ok", verified ? integrityOK : nil)
        row.memory(writer: writerMemory, reader: readerMemory, arena: arenaMemory,
                   checked: writersMemory + [readerMemory, arenaMemory])
        row.activity(writer: writerActivity, reader: readerActivity, engine: transport == TransportKind.engine.rawValue)
    }
}

extension Repetition {
    /// The fanin result of this repetition, if it is one.
    public var fanin: FanInResult? { result as? FanInResult }
}
