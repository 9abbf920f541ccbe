import CPipeSys
import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// How the fan-in reader learns which pipes are readable (poll, or the engine's kqueue).
public typealias FanInMux = ReadinessMux

/// K writer threads each stream `bytesPerWriter` bytes into a pipe of their own; one reader
/// thread multiplexes all K read ends (non-blocking) through poll or kqueue and reads whatever
/// is ready, until every writer has closed its end and the pipe is drained (EOF).
///
/// Engine: all K pipes (and the kqueue) live in one `PipeSystem`, one simulated kernel, as
/// they would in one FreeBSD kernel. `linux-pipe`: K kernel pipes and Linux's `poll(2)`, the
/// same loop, for an apples-to-apples comparison (Linux has no kqueue: `mux` must be poll).
public struct FanInConfig: Sendable {
    public var transport: TransportKind
    public var options: TransportOptions
    /// K, the number of writer threads (and pipes).
    public var writers: Int
    /// Bytes each writer sends.
    public var bytesPerWriter: Int
    /// Bytes per write call (blocking writes; the last one may be shorter).
    public var writeSize: Int
    /// Bytes asked for per read call.
    public var readSize: Int
    public var mux: FanInMux
    /// Send the sequence-numbered `Payload` on every pipe and check every byte per pipe.
    public var verify: Bool
    public var payload: Payload
    /// The writer fields (CPU, node, memory node) apply to every writer thread and its buffer,
    /// the reader fields to the reader, `arenaNode` to the engine's arena.
    public var placement: Placement

    public init(
        transport: TransportKind, options: TransportOptions = TransportOptions(), writers: Int,
        bytesPerWriter: Int, writeSize: Int = 64 * 1024, readSize: Int = 64 * 1024,
        mux: FanInMux = .poll, verify: Bool = false, payload: Payload = Payload(),
        placement: Placement = Placement()
    ) {
        self.transport = transport
        self.options = options
        self.writers = writers
        self.bytesPerWriter = bytesPerWriter
        self.writeSize = writeSize
        self.readSize = readSize
        self.mux = mux
        self.verify = verify
        self.payload = payload
        self.placement = placement
    }

    /// The transports the fan-in workload runs over.
    public static let transports: [TransportKind] = [.engine, .linuxPipe]

    func validate() throws {
        guard Self.transports.contains(transport) else {
            throw HarnessError.unsupported("the fanin workload runs over \(Self.transports.map(\.rawValue).joined(separator: " or ")), not \(transport.rawValue)")
        }
        if mux == .kqueue && transport != .engine {
            throw HarnessError.unsupported("Linux has no kqueue: fanin over \(transport.rawValue) multiplexes with poll")
        }
        guard writers > 0 else { throw HarnessError.invalidArgument("fanin writers must be positive, got \(writers)") }
        guard writers <= 512 else { throw HarnessError.invalidArgument("at most 512 fanin writers, got \(writers)") }
        guard bytesPerWriter > 0 else { throw HarnessError.invalidArgument("fanin bytes per writer must be positive, got \(bytesPerWriter)") }
        guard writeSize > 0 else { throw HarnessError.invalidArgument("fanin write size must be positive, got \(writeSize)") }
        guard readSize > 0 else { throw HarnessError.invalidArgument("fanin read size must be positive, got \(readSize)") }
    }
}

/// The first wrong byte of one writer's stream.
public struct FanInMismatch: Codable, Sendable, Equatable {
    public var writer: Int
    public var mismatch: Mismatch
}

/// What one fan-in run measured. Times are CLOCK_MONOTONIC and CLOCK_THREAD_CPUTIME_ID, ns.
public struct FanInResult: Codable, Sendable {
    public var transport: String
    public var mux: String
    public var writers: Int
    public var bytesPerWriter: Int
    public var writeSize: Int
    public var readSize: Int
    public var verified: Bool
    /// Bytes the reader received from each writer's pipe, in writer order.
    public var perWriterBytes: [Int]
    /// Bytes received from all pipes.
    public var bytesReceived: Int
    /// From the first thread leaving the common start barrier to the last one finishing.
    public var wallNs: Int64
    /// bytesReceived / wall time.
    public var aggregateBytesPerSecond: Double
    /// Each writer's bytes over the time from the common start until the reader saw that
    /// pipe's end of file: how fast that writer's stream was delivered.
    public var perWriterBytesPerSecond: [Double]
    public var writerCPUNs: [Int64]
    public var readerCPUNs: Int64
    /// All K + 1 threads' CPU time, and per byte delivered.
    public var totalCPUNs: Int64
    public var cpuNsPerByte: Double
    /// Write calls of all writers (short writes count).
    public var writeCalls: Int
    /// Read calls that returned data (EOF reads not counted).
    public var readCalls: Int
    /// Read calls that found the pipe empty (EAGAIN).
    public var emptyReads: Int
    /// poll or kevent calls the reader made.
    public var muxCalls: Int
    /// Descriptors those calls reported ready, all calls together.
    public var readyEvents: Int
    /// CPUs each writer ran on at its start and end, in writer order; the reader's.
    public var writerCPUsSeen: [[Int]]
    public var readerCPUsSeen: [Int]
    /// The first wrong byte of each writer whose stream had one (verify mode).
    public var mismatches: [FanInMismatch]
    public var placement: Placement?
    /// Where each writer's buffer, the reader's buffer and the engine's arena were at the end.
    public var writersMemory: [MemoryLocation?]
    public var writerMemory: MemoryLocation? { writersMemory.first ?? nil }
    public var readerMemory: MemoryLocation?
    public var arenaMemory: MemoryLocation?
    /// The engine system's counters after the run (engine only).
    public var engineCounters: EngineCounters?
    /// What the writers' threads (added up) and the reader's did in their measured windows.
    public var writerActivity = ThreadActivity()
    public var readerActivity = ThreadActivity()

    /// True when verification ran, found no wrong byte and every byte of every writer arrived.
    public var integrityOK: Bool {
        verified && mismatches.isEmpty && perWriterBytes.allSatisfy { $0 == bytesPerWriter }
    }
}

/// The K channels of one fan-in run and the readiness set their reader watches. Channel i's
/// write end is used and closed by writer i, the read ends and the set by the reader alone.
final class FanInPipes: @unchecked Sendable {
    let channels: [PollableChannel]
    let readiness: ReadinessSet

    /// K channels of `config.transport`: engine pipes of one `PipeSystem` (one simulated
    /// kernel, as they would be in one FreeBSD kernel), or kernel pipes; closed again if one
    /// cannot be made or the readiness set cannot be built.
    init(_ config: FanInConfig, system: PipeSystem?) throws {
        var made: [PollableChannel] = []
        do {
            for i in 0..<config.writers {
                if let system {
                    made.append(try EngineChannel(system: system, what: "fanin pipe \(i)"))
                } else {
                    made.append(try KernelPipeChannel(pipeSize: config.options.kernelPipeSize, what: "fanin linux-pipe \(i)"))
                }
            }
            readiness = try makeReadinessSet(made, mux: config.mux)
        } catch {
            for c in made { c.closeWriteEnd(); c.closeReadEnd() }
            throw error
        }
        channels = made
    }

    func write(_ i: Int, _ base: UnsafeRawPointer, _ count: Int) throws -> Int { try channels[i].write(base, count) }
    /// Bytes read, 0 at end of file, nil when the pipe is empty (EAGAIN).
    func read(_ i: Int, _ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int? { try channels[i].readIfReady(base, count) }
    func closeWrite(_ i: Int) { channels[i].closeWriteEnd() }
    /// Also stops watching pipe i.
    func closeRead(_ i: Int) {
        readiness.remove(i)
        channels[i].closeReadEnd()
    }
    func wait(_ ready: inout [Int]) throws -> Int { try readiness.wait(&ready) }
}

public enum FanInWorkload {
    public static func run(_ config: FanInConfig) throws -> FanInResult {
        try config.validate()
        if !config.placement.isUnplaced { try config.placement.validate() }
        var system: PipeSystem?
        if config.transport == .engine {
            let engine: PipeSystem
            do { engine = try PipeSystem(config.options.engine.configuration) } catch {
                throw HarnessError.invalidArgument("engine configuration: \(error)")
            }
            if let node = config.placement.arenaNode, let base = engine.arenaRange.baseAddress {
                try bindMemory(base, engine.arenaRange.count, toNode: node, what: "engine arena")
            }
            system = engine
        }
        let pipes = try FanInPipes(config, system: system)
        return try run(config, pipes, system)
    }

    struct WriterReport: Sendable {
        var clock = SideClock()
        var start: Int64 { clock.start }
        var end: Int64 { clock.end }
        var cpuNs: Int64 { clock.cpuNs }
        var calls = 0
        var cpusSeen: [Int] { clock.cpusSeen }
        var memory: MemoryLocation?
    }

    struct ReaderReport: Sendable {
        var clock = SideClock()
        var start: Int64 { clock.start }
        var end: Int64 { clock.end }
        var cpuNs: Int64 { clock.cpuNs }
        var reads = 0
        var emptyReads = 0
        var muxCalls = 0
        var readyEvents = 0
        var bytes: [Int] = []
        var eofAt: [Int64] = []
        var mismatches: [FanInMismatch] = []
        var cpusSeen: [Int] { clock.cpusSeen }
        var memory: MemoryLocation?
        var arena: MemoryLocation?
    }

    static func run(_ config: FanInConfig, _ pipes: FanInPipes, _ system: PipeSystem?) throws -> FanInResult {
        let k = config.writers
        let barrier = SpinBarrier(parties: k + 1)
        let shared = Unchecked(pipes)
        var writers: [WorkerThread<WriterReport>] = []
        let reader: WorkerThread<ReaderReport>
        do {
            reader = try WorkerThread<ReaderReport>.start {
                try readerSide(config, shared.value, barrier, system)
            }
        } catch {
            for i in 0..<k { pipes.closeWrite(i); pipes.closeRead(i) }
            throw error
        }
        for i in 0..<k {
            do {
                writers.append(try WorkerThread<WriterReport>.start {
                    try writerSide(i, config, shared.value, barrier)
                })
            } catch {
                // Writers i… never arrive: release the parties already waiting, and close the
                // write ends no thread owns, so that the reader sees their end of file.
                for j in i..<k {
                    barrier.arrive(failed: true)
                    pipes.closeWrite(j)
                }
                for w in writers { _ = try? w.join() }
                _ = try? reader.join()
                throw error
            }
        }
        let w = writers.map { t in Swift.Result { try t.join() } }
        let r = Swift.Result { try reader.join() }
        // A reader error explains the writers' "peer closed", so report it first.
        let rr = try r.get()
        let wr = try w.map { try $0.get() }

        let start = min(rr.start, wr.map(\.start).min()!)
        let end = max(rr.end, wr.map(\.end).max()!)
        let wall = max(end - start, 1)
        let total = rr.bytes.reduce(0, +)
        let cpu = rr.cpuNs + wr.reduce(Int64(0)) { $0 + $1.cpuNs }
        if !config.verify, let short = rr.bytes.firstIndex(where: { $0 < config.bytesPerWriter }) {
            throw HarnessError.unexpectedEOF(expected: config.bytesPerWriter, received: rr.bytes[short])
        }
        return FanInResult(
            transport: config.transport.rawValue, mux: config.mux.rawValue, writers: k,
            bytesPerWriter: config.bytesPerWriter, writeSize: config.writeSize, readSize: config.readSize,
            verified: config.verify, perWriterBytes: rr.bytes, bytesReceived: total, wallNs: wall,
            aggregateBytesPerSecond: Double(total) / (Double(wall) / 1e9),
            perWriterBytesPerSecond: zip(rr.bytes, rr.eofAt).map { b, t in Double(b) / (Double(max(t - start, 1)) / 1e9) },
            writerCPUNs: wr.map(\.cpuNs), readerCPUNs: rr.cpuNs, totalCPUNs: cpu,
            cpuNsPerByte: Double(cpu) / Double(max(total, 1)),
            writeCalls: wr.reduce(0) { $0 + $1.calls }, readCalls: rr.reads, emptyReads: rr.emptyReads,
            muxCalls: rr.muxCalls, readyEvents: rr.readyEvents,
            writerCPUsSeen: wr.map(\.cpusSeen), readerCPUsSeen: rr.cpusSeen, mismatches: rr.mismatches,
            placement: config.placement.isUnplaced ? nil : config.placement,
            writersMemory: wr.map(\.memory), readerMemory: rr.memory, arenaMemory: rr.arena,
            engineCounters: system.map(EngineCounters.init),
            writerActivity: ThreadActivity.sum(wr.map(\.clock.activity)), readerActivity: rr.clock.activity)
    }

    private static func writerSide(_ i: Int, _ config: FanInConfig, _ pipes: FanInPipes, _ barrier: SpinBarrier) throws -> WriterReport {
        defer { pipes.closeWrite(i) }   // on error too: the reader must see end of file
        let w = config.writeSize
        let buffer = try startTogether(barrier, cpu: config.placement.writerCPU, node: config.placement.writerNode, peerFailed: "fanin: another thread failed to start") {
            return try AlignedBuffer(count: w, node: config.placement.writerMemoryNode, what: "fanin writer \(i) buffer")
        }
        if !config.verify { config.payload.fill(buffer.base, count: w, streamOffset: 0) }
        var report = WriterReport()
        report.clock.begin()
        var sent = 0
        while sent < config.bytesPerWriter {
            let chunk = min(w, config.bytesPerWriter - sent)
            if config.verify { config.payload.fill(buffer.base, count: chunk, streamOffset: sent) }
            var done = 0
            while done < chunk {
                done += try pipes.write(i, buffer.base + done, chunk - done)
                report.calls += 1
            }
            sent += chunk
        }
        report.clock.finish()
        report.memory = buffer.location("fanin writer \(i) buffer")
        return report
    }

    private static func readerSide(_ config: FanInConfig, _ pipes: FanInPipes, _ barrier: SpinBarrier, _ system: PipeSystem?) throws -> ReaderReport {
        let k = config.writers
        var open = [Bool](repeating: true, count: k)
        defer {   // on error too: writers blocked on a full pipe get EPIPE instead of waiting forever
            for i in 0..<k where open[i] { pipes.closeRead(i) }
        }
        let buffer = try startTogether(barrier, cpu: config.placement.readerCPU, node: config.placement.readerNode, peerFailed: "fanin: a writer failed to start") {
            return try AlignedBuffer(count: config.readSize, node: config.placement.readerMemoryNode, what: "fanin reader buffer")
        }
        var report = ReaderReport()
        report.bytes = [Int](repeating: 0, count: k)
        report.eofAt = [Int64](repeating: 0, count: k)
        var mismatched = [Bool](repeating: false, count: k)
        var ready: [Int] = []
        ready.reserveCapacity(k)
        var remaining = k
        report.clock.begin()
        while remaining > 0 {
            report.readyEvents += try pipes.wait(&ready)
            report.muxCalls += 1
            for i in ready where open[i] {
                // Read what is there: until the pipe is empty (EAGAIN, or a read shorter than
                // asked, which empties it) or at its end.
                while true {
                    guard let n = try pipes.read(i, buffer.base, config.readSize) else {
                        report.emptyReads += 1
                        break
                    }
                    if n == 0 {
                        report.eofAt[i] = pb_monotonic_ns()
                        if remaining == 1, let system, let base = system.arenaRange.baseAddress {
                            // Before the last pipe closes and its buffer goes back to the arena.
                            report.arena = MemoryLocation.query(base, bytes: system.arenaRange.count, what: "engine arena",
                                                                requestedNode: config.placement.arenaNode)
                        }
                        open[i] = false
                        pipes.closeRead(i)
                        remaining -= 1
                        break
                    }
                    report.reads += 1
                    if config.verify && !mismatched[i],
                       let m = config.payload.firstMismatch(buffer.base, count: n, streamOffset: report.bytes[i]) {
                        mismatched[i] = true
                        report.mismatches.append(FanInMismatch(writer: i, mismatch: m))
                    }
                    report.bytes[i] += n
                    if n < config.readSize { break }
                }
            }
        }
        report.clock.finish()
        report.memory = buffer.location("fanin reader buffer")
        return report
    }
}
