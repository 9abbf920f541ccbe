import CPipeSys
import Histogram
import PipeEngine

/// W writer threads and R reader threads on one pipe (or socket): every write is one record
/// of `recordSize` bytes, every reader reads until end of file. This is where the pipe's
/// lock and its waits are fought over — log lines from many processes into one pipe, a pool
/// of workers taking jobs from one — and what Linux's `tools/testing/selftests/pipe/pipe_bench.c`
/// measures (N writers, M readers, one pipe), here with both ends' latencies in histograms.
///
/// Engine: one pipe of one `PipeSystem`, its two descriptors shared by all threads, as the
/// processes of one FreeBSD kernel share one pipe's files. `linux-pipe`: one kernel pipe.
/// `unix-socket`: one AF_UNIX socket pair, `SOCK_SEQPACKET` (each record a message) or
/// `SOCK_STREAM`.
public struct ContendConfig: Sendable {
    public var transport: TransportKind
    public var options: TransportOptions
    /// W, the writer threads.
    public var writers: Int
    /// R, the reader threads.
    public var readers: Int
    /// Bytes per record: every write call offers one record (a short write's rest is written
    /// at once, by the same writer).
    public var recordSize: Int
    public var recordsPerWriter: Int
    /// Bytes each read asks for.
    public var readSize: Int
    /// unix-socket only: the socket type.
    public var socket: UnixSocketType
    /// Send numbered records and check what the readers got (`ContendRecords`).
    public var verify: Bool
    public var payload: Payload
    /// The writer fields (CPU, node, memory node) apply to every writer thread and its
    /// buffer, the reader fields to every reader, `arenaNode` to the engine's arena.
    public var placement: Placement
    /// One CPU per thread, writers first, then readers, overriding the placement's CPUs
    /// (`ThreadCPUs`); empty: every writer on `placement.writerCPU`, every reader on
    /// `placement.readerCPU`.
    public var threadCPUs: [Int]

    public init(
        transport: TransportKind, options: TransportOptions = TransportOptions(), writers: Int, readers: Int,
        recordSize: Int, recordsPerWriter: Int, readSize: Int? = nil, socket: UnixSocketType = .seqpacket,
        verify: Bool = false, payload: Payload = Payload(), placement: Placement = Placement(), threadCPUs: [Int] = []
    ) {
        self.transport = transport
        self.options = options
        self.writers = writers
        self.readers = readers
        self.recordSize = recordSize
        self.recordsPerWriter = recordsPerWriter
        self.readSize = readSize ?? recordSize
        self.socket = socket
        self.verify = verify
        self.payload = payload
        self.placement = placement
        self.threadCPUs = threadCPUs
    }

    /// The transports the contend workload runs over.
    public static let transports: [TransportKind] = [.engine, .linuxPipe, .unixSocket]

    /// The largest record the transport keeps whole (`SharedChannel.atomicWriteLimit`).
    public static func atomicWriteLimit(_ transport: TransportKind, socket: UnixSocketType) -> Int? {
        switch transport {
        case .engine: return PipeEngine.PIPE_BUF
        case .linuxPipe: return linuxPipeBuf
        case .unixSocket: return socket == .seqpacket ? Int.max : nil
        default: return nil
        }
    }

    public var records: ContendRecords {
        ContendRecords(recordSize: recordSize, writers: writers, recordsPerWriter: recordsPerWriter, payload: payload)
    }

    func writerCPU(_ i: Int) -> Int? { threadCPUs.isEmpty ? placement.writerCPU : threadCPUs[i % threadCPUs.count] }
    func readerCPU(_ j: Int) -> Int? { threadCPUs.isEmpty ? placement.readerCPU : threadCPUs[(writers + j) % threadCPUs.count] }

    /// The checks that do not depend on the transport's promise (`check(_:)` does those).
    func validate() throws {
        guard Self.transports.contains(transport) else {
            throw HarnessError.unsupported("the contend workload runs over \(Self.transports.map(\.rawValue).joined(separator: ", ")), not \(transport.rawValue)")
        }
        guard writers > 0, writers <= 512 else { throw HarnessError.invalidArgument("contend writers must be 1 to 512, got \(writers)") }
        guard readers > 0, readers <= 512 else { throw HarnessError.invalidArgument("contend readers must be 1 to 512, got \(readers)") }
        guard recordSize > 0 else { throw HarnessError.invalidArgument("contend record size must be positive, got \(recordSize)") }
        guard recordsPerWriter > 0 else { throw HarnessError.invalidArgument("contend records per writer must be positive, got \(recordsPerWriter)") }
        guard readSize > 0 else { throw HarnessError.invalidArgument("contend read size must be positive, got \(readSize)") }
    }

    /// What `channel` promises, against the record and read sizes (`recordProblem`).
    func check(_ channel: SharedChannel) throws {
        if let problem = Self.recordProblem(recordSize: recordSize, readSize: readSize, verify: verify,
                                            atomicWriteLimit: channel.atomicWriteLimit,
                                            keepsMessageBoundaries: channel.keepsMessageBoundaries) {
            throw HarnessError.invalidArgument(problem)
        }
    }

    /// Why records of `recordSize` read `readSize` at a time cannot be measured (or checked)
    /// over a transport with this promise, or nil: the rules, once, for the harness and the
    /// command line. A read of a message-keeping socket discards what it leaves of a message;
    /// `--verify` numbers each record in a header, and checks records within the atomic limit
    /// one by one, so a read must then hold whole records.
    static func recordProblem(recordSize: Int, readSize: Int, verify: Bool,
                              atomicWriteLimit: Int?, keepsMessageBoundaries: Bool) -> String? {
        if keepsMessageBoundaries && readSize < recordSize {
            return "a \(readSize)-byte read of a \(recordSize)-byte record would discard the rest of it (a SOCK_SEQPACKET read takes one message): read at least a record"
        }
        guard verify else { return nil }
        if recordSize < ContendRecords.headerSize {
            return "contend --verify numbers each record in a \(ContendRecords.headerSize)-byte header: records of at least \(ContendRecords.headerSize) bytes (got \(recordSize))"
        }
        if let limit = atomicWriteLimit, recordSize <= limit, !keepsMessageBoundaries, readSize % recordSize != 0 {
            return "contend --verify reads whole records of \(recordSize) bytes: the read size \(readSize) must be a multiple of it"
        }
        return nil
    }
}

/// What one contend run measured. Times are CLOCK_MONOTONIC and CLOCK_THREAD_CPUTIME_ID, ns.
public struct ContendResult: Codable, Sendable {
    public var transport: String
    /// unix-socket: `stream` or `seqpacket`; nil for pipes.
    public var socket: String?
    public var writers: Int
    public var readers: Int
    public var recordSize: Int
    public var readSize: Int
    public var recordsPerWriter: Int
    /// The transport's atomic write limit (nil: none promised; `Int.max`: message boundaries).
    public var atomicWriteLimit: Int?
    public var verified: Bool
    /// Bytes written by all writers, and received by all readers (each reader's, in order).
    public var bytesSent: Int
    public var perReaderBytes: [Int]
    public var bytesReceived: Int
    /// From the first thread leaving the common start barrier to the last one finishing.
    public var wallNs: Int64
    public var bytesPerSecond: Double
    public var recordsPerSecond: Double
    /// Each writer's bytes over its own time from the common start to its last write.
    public var perWriterBytesPerSecond: [Double]
    public var writerCPUNs: [Int64]
    public var readerCPUNs: [Int64]
    public var cpuNsPerByte: Double
    /// Write calls of all writers (a short write's rest is another call).
    public var writeCalls: Int
    /// Reads that returned data (end-of-file reads not counted).
    public var readCalls: Int
    /// One record written (its write calls together) and one read call, ns, all threads.
    public var enqueue: LatencySummary
    public var dequeue: LatencySummary
    /// The first thing `--verify` found wrong.
    public var violation: RecordViolation?
    public var writerCPUsSeen: [[Int]]
    public var readerCPUsSeen: [[Int]]
    public var placement: Placement?
    public var threadCPUs: [Int]
    public var writerMemory: MemoryLocation?
    public var readerMemory: MemoryLocation?
    public var arenaMemory: MemoryLocation?
    public var engineCounters: EngineCounters?
    public var writerActivity = ThreadActivity()
    public var readerActivity = ThreadActivity()

    public var records: Int { bytesReceived / max(recordSize, 1) }
    public var integrityOK: Bool { verified && violation == nil && bytesReceived == bytesSent }
}

/// A result plus the two full histograms (`ContendResult` keeps their percentiles).
public struct ContendMeasurement: Sendable {
    public var result: ContendResult
    public var enqueue: Histogram<UInt64>
    public var dequeue: Histogram<UInt64>
}

public enum ContendWorkload {
    /// Runs one measurement over a fresh channel of `config.transport`.
    public static func run(_ config: ContendConfig) throws -> ContendMeasurement {
        try config.validate()
        let channel: SharedChannel
        var system: PipeSystem?
        switch config.transport {
        case .engine:
            let c = try EngineChannel(config.options.engine)
            if let node = config.placement.arenaNode, let base = c.system.arenaRange.baseAddress {
                try bindMemory(base, c.system.arenaRange.count, toNode: node, what: "engine arena")
            }
            channel = c
            system = c.system
        case .linuxPipe: channel = try KernelPipeChannel(pipeSize: config.options.kernelPipeSize, what: "contend linux-pipe")
        default: channel = try UnixSocketChannel(type: config.socket)
        }
        return try run(config, over: channel, system: system)
    }

    struct WriterReport: Sendable {
        var clock = SideClock()
        var calls = 0
        var histogram: Histogram<UInt64>
        var weight: UInt64 = 0
        var memory: MemoryLocation?
    }

    struct ReaderReport: Sendable {
        var clock = SideClock()
        var reads = 0
        var bytes = 0
        var histogram: Histogram<UInt64>
        var checker: RecordChecker?
        var memory: MemoryLocation?
        var arena: MemoryLocation?
    }

    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: PingPongWorkload.highestTrackableNs,
                          numberOfSignificantValueDigits: .three)
    }

    /// Runs over `channel`, which the run closes: a transport of the caller's (the tests give
    /// one that splits a record on purpose, to show that the check finds it).
    static func run(_ config: ContendConfig, over channel: SharedChannel, system: PipeSystem? = nil) throws -> ContendMeasurement {
        try config.validate()
        do {
            try config.check(channel)
            if !config.placement.isUnplaced { try config.placement.validate() }
            for cpu in config.threadCPUs { try Placement(writerCPU: cpu).validate() }
        } catch {
            channel.closeWriteEnd()
            channel.closeReadEnd()
            throw error
        }
        let w = config.writers, r = config.readers
        let barrier = SpinBarrier(parties: w + r)
        // The last writer out closes the write end (the readers then see end of file), the last
        // reader out the read end (writers still writing then get EPIPE, not a wait forever).
        let writersLeft = SharedCounter(w), readersLeft = SharedCounter(r)
        let shared = Unchecked(channel)
        let leaveWriting: @Sendable () -> Void = { if writersLeft.addAndFetch(-1) == 0 { shared.value.closeWriteEnd() } }
        let leaveReading: @Sendable () -> Void = { if readersLeft.addAndFetch(-1) == 0 { shared.value.closeReadEnd() } }
        let whole = config.atomicRecords(channel)

        var readerThreads: [WorkerThread<ReaderReport>] = []
        var writerThreads: [WorkerThread<WriterReport>] = []
        func abandon(readersFrom j0: Int, writersFrom i0: Int) {
            for _ in j0..<r { barrier.arrive(failed: true); leaveReading() }
            for _ in i0..<w { barrier.arrive(failed: true); leaveWriting() }
            for t in readerThreads { _ = try? t.join() }
            for t in writerThreads { _ = try? t.join() }
        }
        for j in 0..<r {
            do {
                readerThreads.append(try WorkerThread<ReaderReport>.start {
                    defer { leaveReading() }
                    return try readerSide(j, config, whole, shared.value, barrier, system)
                })
            } catch {
                abandon(readersFrom: j, writersFrom: 0)
                throw error
            }
        }
        for i in 0..<w {
            do {
                writerThreads.append(try WorkerThread<WriterReport>.start {
                    defer { leaveWriting() }
                    return try writerSide(i, config, shared.value, barrier)
                })
            } catch {
                abandon(readersFrom: r, writersFrom: i)
                throw error
            }
        }
        let wj = writerThreads.map { t in Swift.Result { try t.join() } }
        let rj = readerThreads.map { t in Swift.Result { try t.join() } }
        // A reader's error explains the writers' "peer closed", so it is reported first.
        let rr = try rj.map { try $0.get() }
        let wr = try wj.map { try $0.get() }

        let start = min(rr.map(\.clock.start).min()!, wr.map(\.clock.start).min()!)
        let end = max(rr.map(\.clock.end).max()!, wr.map(\.clock.end).max()!)
        let wall = max(end - start, 1)
        let received = rr.reduce(0) { $0 + $1.bytes }
        let sent = w * config.recordsPerWriter * config.recordSize
        var violation: RecordViolation?
        if config.verify {
            violation = RecordChecker.merge(rr.compactMap(\.checker), expectedWeight: wr.reduce(UInt64(0)) { $0 &+ $1.weight },
                                            bytesSent: sent)
        } else if received != sent {
            throw HarnessError.unexpectedEOF(expected: sent, received: received)
        }
        var enqueue = histogram(), dequeue = histogram()
        for x in wr { enqueue.add(x.histogram) }
        for x in rr { dequeue.add(x.histogram) }
        let cpu = rr.reduce(Int64(0)) { $0 + $1.clock.cpuNs } + wr.reduce(Int64(0)) { $0 + $1.clock.cpuNs }
        let seconds = Double(wall) / 1e9
        let result = ContendResult(
            transport: config.transport.rawValue,
            socket: config.transport == .unixSocket ? config.socket.rawValue : nil,
            writers: w, readers: r, recordSize: config.recordSize, readSize: config.readSize,
            recordsPerWriter: config.recordsPerWriter, atomicWriteLimit: channel.atomicWriteLimit, verified: config.verify,
            bytesSent: sent, perReaderBytes: rr.map(\.bytes), bytesReceived: received, wallNs: wall,
            bytesPerSecond: Double(received) / seconds,
            recordsPerSecond: Double(received / config.recordSize) / seconds,
            perWriterBytesPerSecond: wr.map { Double(config.recordsPerWriter * config.recordSize) / (Double(max($0.clock.end - start, 1)) / 1e9) },
            writerCPUNs: wr.map(\.clock.cpuNs), readerCPUNs: rr.map(\.clock.cpuNs),
            cpuNsPerByte: Double(cpu) / Double(max(received, 1)),
            writeCalls: wr.reduce(0) { $0 + $1.calls }, readCalls: rr.reduce(0) { $0 + $1.reads },
            enqueue: LatencySummary(enqueue), dequeue: LatencySummary(dequeue), violation: violation,
            writerCPUsSeen: wr.map(\.clock.cpusSeen), readerCPUsSeen: rr.map(\.clock.cpusSeen),
            placement: config.placement.isUnplaced ? nil : config.placement, threadCPUs: config.threadCPUs,
            writerMemory: wr.first?.memory, readerMemory: rr.first?.memory, arenaMemory: rr.compactMap(\.arena).first,
            engineCounters: system.map(EngineCounters.init),
            writerActivity: ThreadActivity.sum(wr.map(\.clock.activity)), readerActivity: ThreadActivity.sum(rr.map(\.clock.activity)))
        return ContendMeasurement(result: result, enqueue: enqueue, dequeue: dequeue)
    }

    private static func writerSide(_ i: Int, _ config: ContendConfig, _ channel: SharedChannel, _ barrier: SpinBarrier) throws -> WriterReport {
        let size = config.recordSize
        var (buffer, report) = try startTogether(barrier, cpu: config.writerCPU(i), node: config.placement.writerNode,
                                                 peerFailed: "contend: another thread failed to start") {
            (try AlignedBuffer(count: size, node: config.placement.writerMemoryNode, what: "contend writer \(i) buffer"),
             WriterReport(histogram: histogram()))
        }
        let records = config.records
        if !config.verify { config.payload.fill(buffer.base, count: size, streamOffset: 0) }
        report.clock.begin()
        // One clock read per record: the end of one write is the start of the next (in verify
        // mode the clock is read again after the record is made, so that making it is not timed).
        var before = pb_monotonic_ns()
        for s in 0..<config.recordsPerWriter {
            if config.verify {
                records.fill(buffer.base, writer: i, sequence: s)
                ContendRecords.weigh(buffer.base, size, into: &report.weight)
                before = pb_monotonic_ns()
            }
            var done = 0
            while done < size {
                done += try channel.write(buffer.base + done, size - done)
                report.calls += 1
            }
            let after = pb_monotonic_ns()
            _ = report.histogram.record(UInt64(max(after - before, 0)))
            before = after
        }
        report.clock.finish()
        report.memory = buffer.location("contend writer \(i) buffer")
        return report
    }

    private static func readerSide(_ j: Int, _ config: ContendConfig, _ whole: Bool, _ channel: SharedChannel,
                                   _ barrier: SpinBarrier, _ system: PipeSystem?) throws -> ReaderReport {
        var (buffer, report) = try startTogether(barrier, cpu: config.readerCPU(j), node: config.placement.readerNode,
                                                 peerFailed: "contend: another thread failed to start") {
            (try AlignedBuffer(count: config.readSize, node: config.placement.readerMemoryNode, what: "contend reader \(j) buffer"),
             ReaderReport(histogram: histogram(),
                          checker: config.verify ? RecordChecker(config.records, reader: j, whole: whole) : nil))
        }
        report.clock.begin()
        var before = pb_monotonic_ns()
        while true {
            let n = try channel.read(buffer.base, config.readSize)
            let after = pb_monotonic_ns()
            if n == 0 { break }
            _ = report.histogram.record(UInt64(max(after - before, 0)))
            report.reads += 1
            report.bytes += n
            if report.checker != nil {
                report.checker!.check(buffer.base, n)
                before = pb_monotonic_ns()
            } else {
                before = after
            }
        }
        report.clock.finish()
        report.memory = buffer.location("contend reader \(j) buffer")
        if j == 0, let system, let base = system.arenaRange.baseAddress {
            report.arena = MemoryLocation.query(base, bytes: system.arenaRange.count, what: "engine arena",
                                                requestedNode: config.placement.arenaNode)
        }
        return report
    }
}

extension ContendConfig {
    /// Whether records are checked one by one over `channel`: it keeps them whole.
    func atomicRecords(_ channel: SharedChannel) -> Bool {
        channel.atomicWriteLimit.map { recordSize <= $0 } ?? false
    }
}
