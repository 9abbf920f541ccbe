import CPipeSys
import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// How the fan-in reader learns which pipes are readable.
public enum FanInMux: String, Sendable, Codable, CaseIterable {
    /// `poll(2)` over every pipe still open (the engine's `PipeSystem.poll`, or Linux's).
    case poll
    /// The engine's `kqueue`/`kevent`: one `EVFILT_READ` knote per pipe (engine only).
    case kqueue
}

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
    /// Where writer 0's buffer, the reader's buffer and the engine's arena were at the end.
    public var writerMemory: MemoryLocation?
    public var readerMemory: MemoryLocation?
    public var arenaMemory: MemoryLocation?
    /// The engine system's counters after the run (engine only).
    public var engineCounters: EngineCounters?

    /// True when verification ran, found no wrong byte and every byte of every writer arrived.
    public var integrityOK: Bool {
        verified && mismatches.isEmpty && perWriterBytes.allSatisfy { $0 == bytesPerWriter }
    }
}

/// The descriptors of one fan-in run and how to use them: engine or Linux, poll or kqueue.
/// Write ends are used and closed by their writer thread, read ends by the reader thread.
protocol FanInPipes: AnyObject {
    func write(_ i: Int, _ base: UnsafeRawPointer, _ count: Int) throws -> Int
    /// Bytes read, 0 at end of file, nil when the pipe is empty (EAGAIN).
    func read(_ i: Int, _ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int?
    func closeWrite(_ i: Int)
    /// Also stops watching pipe i.
    func closeRead(_ i: Int)
    /// Waits until at least one watched pipe is readable (or at its end) and puts the indices
    /// of the ready ones into `ready`. Returns how many descriptors the call reported.
    func wait(_ ready: inout [Int]) throws -> Int
}

public enum FanInWorkload {
    public static func run(_ config: FanInConfig) throws -> FanInResult {
        try config.validate()
        if !config.placement.isUnplaced { try config.placement.validate() }
        let pipes: FanInPipes
        var system: PipeSystem?
        switch config.transport {
        case .engine:
            let e = try EngineFanIn(config)
            system = e.system
            if let node = config.placement.arenaNode, let base = e.system.arenaRange.baseAddress {
                try bindMemory(base, e.system.arenaRange.count, toNode: node, what: "engine arena")
            }
            pipes = e
        default:
            pipes = try LinuxFanIn(config)
        }
        return try run(config, pipes, system)
    }

    struct WriterReport: Sendable {
        var start: Int64 = 0
        var end: Int64 = 0
        var cpuNs: Int64 = 0
        var calls = 0
        var cpusSeen: [Int] = []
        var memory: MemoryLocation?
    }

    struct ReaderReport: Sendable {
        var start: Int64 = 0
        var end: Int64 = 0
        var cpuNs: Int64 = 0
        var reads = 0
        var emptyReads = 0
        var muxCalls = 0
        var readyEvents = 0
        var bytes: [Int] = []
        var eofAt: [Int64] = []
        var mismatches: [FanInMismatch] = []
        var cpusSeen: [Int] = []
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
            writerMemory: wr.first?.memory, readerMemory: rr.memory, arenaMemory: rr.arena,
            engineCounters: system.map(EngineCounters.init))
    }

    private static func writerSide(_ i: Int, _ config: FanInConfig, _ pipes: FanInPipes, _ barrier: SpinBarrier) throws -> WriterReport {
        defer { pipes.closeWrite(i) }   // on error too: the reader must see end of file
        let w = config.writeSize
        let setup = Swift.Result { () throws -> AlignedBuffer in
            try applyThreadPlacement(cpu: config.placement.writerCPU, node: config.placement.writerNode)
            return try AlignedBuffer(count: w, node: config.placement.writerMemoryNode, what: "fanin writer \(i) buffer")
        }
        guard barrier.arriveAndWait(failed: (try? setup.get()) == nil) else {
            if case .failure(let e) = setup { throw e }
            throw HarnessError.peerClosed("fanin: another thread failed to start")
        }
        let buffer = try setup.get()
        if !config.verify { config.payload.fill(buffer.base, count: w, streamOffset: 0) }
        var report = WriterReport()
        report.cpusSeen.append(Int(pb_sched_getcpu()))
        let cpu0 = pb_thread_cpu_ns()
        report.start = pb_monotonic_ns()
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
        report.end = pb_monotonic_ns()
        report.cpuNs = pb_thread_cpu_ns() - cpu0
        report.cpusSeen.append(Int(pb_sched_getcpu()))
        report.memory = buffer.location("fanin writer \(i) buffer")
        return report
    }

    private static func readerSide(_ config: FanInConfig, _ pipes: FanInPipes, _ barrier: SpinBarrier, _ system: PipeSystem?) throws -> ReaderReport {
        let k = config.writers
        var open = [Bool](repeating: true, count: k)
        defer {   // on error too: writers blocked on a full pipe get EPIPE instead of waiting forever
            for i in 0..<k where open[i] { pipes.closeRead(i) }
        }
        let setup = Swift.Result { () throws -> AlignedBuffer in
            try applyThreadPlacement(cpu: config.placement.readerCPU, node: config.placement.readerNode)
            return try AlignedBuffer(count: config.readSize, node: config.placement.readerMemoryNode, what: "fanin reader buffer")
        }
        guard barrier.arriveAndWait(failed: (try? setup.get()) == nil) else {
            if case .failure(let e) = setup { throw e }
            throw HarnessError.peerClosed("fanin: a writer failed to start")
        }
        let buffer = try setup.get()
        var report = ReaderReport()
        report.bytes = [Int](repeating: 0, count: k)
        report.eofAt = [Int64](repeating: 0, count: k)
        var mismatched = [Bool](repeating: false, count: k)
        var ready: [Int] = []
        ready.reserveCapacity(k)
        var remaining = k
        report.cpusSeen.append(Int(pb_sched_getcpu()))
        let cpu0 = pb_thread_cpu_ns()
        report.start = pb_monotonic_ns()
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
        report.end = pb_monotonic_ns()
        report.cpuNs = pb_thread_cpu_ns() - cpu0
        report.cpusSeen.append(Int(pb_sched_getcpu()))
        report.memory = buffer.location("fanin reader buffer")
        return report
    }
}

// MARK: - engine

/// K engine pipes in one `PipeSystem`; read ends non-blocking, watched by poll or a kqueue.
final class EngineFanIn: FanInPipes, @unchecked Sendable {
    let system: PipeSystem
    let mux: FanInMux
    let readFDs: [Int32]
    let writeFDs: [Int32]
    /// Reader thread only: the poll set (a closed pipe's entry is -1, which poll skips).
    private let pollSet: UnsafeMutableBufferPointer<PollFD>
    private var kq: Int32 = -1
    /// Reader thread only: kevent's event list (one slot per pipe), reused by every call so
    /// that the kqueue mux allocates no more than the poll one does.
    private let events: UnsafeMutableBufferPointer<Kevent>
    /// The read fd of each pipe index, for kevent's idents.
    private let indexOfFD: [Int32: Int]

    init(_ config: FanInConfig) throws {
        do { system = try PipeSystem(config.options.engine.configuration) } catch {
            throw HarnessError.invalidArgument("engine configuration: \(error)")
        }
        mux = config.mux
        var r: [Int32] = [], w: [Int32] = []
        do {
            for _ in 0..<config.writers {
                let (rfd, wfd) = try system.pipe2()
                r.append(rfd)
                w.append(wfd)
                _ = try system.fcntl(rfd, F_SETFL, O_NONBLOCK)
            }
        } catch {
            for fd in r + w { try? system.close(fd) }
            throw HarnessError.system(call: "pipe2/fcntl (engine)", errno: error.rawValue, context: "fanin, \(r.count) of \(config.writers) pipes made")
        }
        readFDs = r
        writeFDs = w
        indexOfFD = Dictionary(uniqueKeysWithValues: r.enumerated().map { ($1, $0) })
        pollSet = .allocate(capacity: r.count)
        for (i, fd) in r.enumerated() { pollSet[i] = PollFD(fd: fd, events: PollEvents.POLLIN) }
        events = .allocate(capacity: r.count)
        if mux == .kqueue {
            do {
                kq = try system.kqueue()
                let changes = r.enumerated().map { i, fd in
                    Kevent(ident: UInt(fd), filter: Kevent.EVFILT_READ, flags: Kevent.EV_ADD, udata: UInt(i))
                }
                _ = try system.kevent(kq, changes: changes, capacity: 0, timeout: 0)
            } catch {
                for fd in r + w { try? system.close(fd) }
                if kq >= 0 { try? system.close(kq) }
                pollSet.deallocate()
                events.deallocate()
                throw HarnessError.system(call: "kqueue/kevent (engine)", errno: error.rawValue, context: "fanin registration")
            }
        }
    }

    deinit {
        if kq >= 0 { try? system.close(kq) }
        pollSet.deallocate()
        events.deallocate()
    }

    func write(_ i: Int, _ base: UnsafeRawPointer, _ count: Int) throws -> Int {
        while true {
            do {
                return try system.write(writeFDs[i], base, count)
            } catch .interrupted {
                continue
            } catch .brokenPipe {
                throw HarnessError.peerClosed("fanin engine write \(i): the read end is closed (EPIPE)")
            } catch {
                throw HarnessError.system(call: "write (engine)", errno: error.rawValue, context: "fanin writer \(i)")
            }
        }
    }

    func read(_ i: Int, _ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int? {
        while true {
            do {
                return try system.read(readFDs[i], base, count)
            } catch .interrupted {
                continue
            } catch .wouldBlock {
                return nil
            } catch {
                throw HarnessError.system(call: "read (engine)", errno: error.rawValue, context: "fanin pipe \(i)")
            }
        }
    }

    func closeWrite(_ i: Int) { try? system.close(writeFDs[i]) }

    func closeRead(_ i: Int) {
        pollSet[i].fd = -1
        try? system.close(readFDs[i])   // also removes its knote from the kqueue (knote_fdclose)
    }

    func wait(_ ready: inout [Int]) throws -> Int {
        ready.removeAll(keepingCapacity: true)
        switch mux {
        case .poll:
            let n: Int
            do { n = try system.poll(pollSet, timeout: -1) } catch {
                if error == .interrupted { return 0 }
                throw HarnessError.system(call: "poll (engine)", errno: error.rawValue, context: "fanin")
            }
            for i in pollSet.indices where pollSet[i].fd >= 0 && pollSet[i].revents != 0 { ready.append(i) }
            return n
        case .kqueue:
            let n: Int
            do {
                n = try system.kevent(kq, changes: UnsafeBufferPointer(start: nil, count: 0), events: events, timeout: nil)
            } catch {
                if error == .interrupted { return 0 }
                throw HarnessError.system(call: "kevent (engine)", errno: error.rawValue, context: "fanin")
            }
            for e in events[0..<n] {
                if e.flags & Kevent.EV_ERROR != 0 {
                    throw HarnessError.system(call: "kevent (engine)", errno: Int32(e.data), context: "fanin event for fd \(e.ident)")
                }
                if let i = indexOfFD[Int32(e.ident)] { ready.append(i) }
            }
            return n
        }
    }
}

// MARK: - Linux

/// K kernel pipes; read ends non-blocking, watched by Linux's poll(2).
///
/// The descriptors live in fixed buffers, one slot per pipe end: writer i's thread is the only
/// one touching write slot i, the reader the only one touching the read slots (and the poll
/// set), so no lock is needed; `deinit` closes whatever is left once all threads are done.
final class LinuxFanIn: FanInPipes, @unchecked Sendable {
    private let readFDs: UnsafeMutableBufferPointer<Int32>
    private let writeFDs: UnsafeMutableBufferPointer<Int32>
    private let pollSet: UnsafeMutableBufferPointer<pollfd>

    init(_ config: FanInConfig) throws {
        ignoreSIGPIPE()
        let k = config.writers
        readFDs = .allocate(capacity: k)
        readFDs.initialize(repeating: -1)
        writeFDs = .allocate(capacity: k)
        writeFDs.initialize(repeating: -1)
        pollSet = .allocate(capacity: k)
        do {
            for i in 0..<k {
                let fds = try FD.pipe(what: "fanin linux-pipe")
                readFDs[i] = fds.read
                writeFDs[i] = fds.write
                if let size = config.options.kernelPipeSize { _ = try setKernelPipeSize(fds.write, size) }
                let flags = fcntl(fds.read, F_GETFL)
                if flags < 0 || fcntl(fds.read, F_SETFL, flags | O_NONBLOCK) != 0 {
                    throw HarnessError.system(call: "fcntl(F_SETFL, O_NONBLOCK)", errno: errno, context: "fanin linux-pipe")
                }
                pollSet[i] = pollfd(fd: fds.read, events: Int16(POLLIN), revents: 0)
            }
        } catch {
            closeAll()
            throw error
        }
    }

    private func closeAll() {
        for i in readFDs.indices { FD.close(&readFDs[i]); FD.close(&writeFDs[i]) }
    }

    deinit {
        closeAll()
        readFDs.deallocate()
        writeFDs.deallocate()
        pollSet.deallocate()
    }

    func write(_ i: Int, _ base: UnsafeRawPointer, _ count: Int) throws -> Int {
        try FD.write(writeFDs[i], base, count, what: "fanin linux-pipe \(i)")
    }

    func read(_ i: Int, _ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int? {
        while true {
            let n = Glibc.read(readFDs[i], base, count)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return nil }
            throw HarnessError.system(call: "read", errno: e, context: "fanin linux-pipe \(i)")
        }
    }

    func closeWrite(_ i: Int) { FD.close(&writeFDs[i]) }

    func closeRead(_ i: Int) {
        pollSet[i].fd = -1
        FD.close(&readFDs[i])
    }

    func wait(_ ready: inout [Int]) throws -> Int {
        ready.removeAll(keepingCapacity: true)
        let n = Glibc.poll(pollSet.baseAddress, nfds_t(pollSet.count), -1)
        if n < 0 {
            let e = errno
            if e == EINTR { return 0 }
            throw HarnessError.system(call: "poll", errno: e, context: "fanin linux-pipe")
        }
        for i in pollSet.indices where pollSet[i].fd >= 0 && pollSet[i].revents != 0 { ready.append(i) }
        return Int(n)
    }
}
