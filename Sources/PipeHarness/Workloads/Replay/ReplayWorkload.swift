import CPipeSys
import PipeEngine

/// How a replay spaces the calls of each thread.
public enum ReplayTiming: String, Sendable, Codable, CaseIterable {
    /// No gaps: each thread makes its next call as soon as the last returns — what the pipe
    /// itself costs.
    case asap
    /// Each call after its recorded gap, spent as busy work — how much of the pipeline's time
    /// the pipe decides.
    case recorded
}

/// Replays a ``PipeTrace``: every pipe of the recording at once, each over a fresh channel
/// of the transport, with one thread for each process that wrote into it and one for each
/// that read out of it, making that process's calls on that end in their order, with their
/// sizes.
///
/// A writer writes what each recorded write returned (all of it: a blocking write), and stops
/// at a recorded `EPIPE`. A reader asks what each recorded read asked, but never more than it
/// has still to read of what it read in the recording, so that every reader of a shared end
/// gets its own share and no reader waits for bytes that another took; when its recorded
/// reads run out before its share is in (a replayed read returned less), it goes on asking
/// the last size. The last writer of a pipe out closes the write end, the last reader out the
/// read end — as the processes' exits did — so a writer still writing gets `EPIPE`, as in
/// `yes | head`. Failed recorded calls other than `EPIPE` (`EAGAIN` of a non-blocking end,
/// `EINTR`) are not replayed.
public struct ReplayConfig: Sendable {
    public var transport: TransportKind
    public var options: TransportOptions
    public var trace: PipeTrace
    /// The trace's name in labels and results (its file name).
    public var traceName: String
    public var timing: ReplayTiming
    /// Pipes with one writer and one reader carry the sequence payload, checked byte for
    /// byte; every pipe's reader must get exactly the bytes it read in the recording.
    public var verify: Bool
    /// The writer fields apply to every writing thread, the reader fields to every reading one.
    public var placement: Placement
    /// Why the trace of a sweep point could not be read (the replay then fails with it).
    var loadError: String?

    public init(transport: TransportKind, options: TransportOptions = TransportOptions(), trace: PipeTrace,
                traceName: String, timing: ReplayTiming = .asap, verify: Bool = false, placement: Placement = Placement()) {
        self.transport = transport
        self.options = options
        self.trace = trace
        self.traceName = traceName
        self.timing = timing
        self.verify = verify
        self.placement = placement
    }

    /// The transports a replay runs over: those whose ends many threads may share.
    public static let transports: [TransportKind] = [.engine, .linuxPipe, .unixSocket]

    /// The replaying threads: one per pipe, process and end that made calls, writers first
    /// within a pipe.
    public var plan: [ReplayThreadPlan] {
        var out: [ReplayThreadPlan] = []
        for p in trace.pipes {
            for end in [PipeTrace.End.write, .read] {
                var byProcess: [Int32: [PipeTrace.Call]] = [:]
                var order: [Int32] = []
                for c in trace.calls where c.pipe == p.id && c.end == end {
                    if byProcess[c.pid] == nil { order.append(c.pid) }
                    byProcess[c.pid, default: []].append(c)
                }
                for pid in order { out.append(ReplayThreadPlan(pipe: p.id, pid: pid, end: end, calls: byProcess[pid]!)) }
            }
        }
        return out
    }
}

/// One replaying thread: the calls of one process on one end of one pipe.
public struct ReplayThreadPlan: Sendable {
    public var pipe: Int
    public var pid: Int32
    public var end: PipeTrace.End
    public var calls: [PipeTrace.Call]

    /// The bytes it moved in the recording.
    public var bytes: Int { calls.reduce(0) { $0 + $1.bytes } }
    /// The largest call, for its buffer.
    public var largest: Int { max(1, calls.map(\.asked).max() ?? 1) }
}

/// What one replay measured.
public struct ReplayResult: Codable, Sendable {
    public var transport: String
    public var trace: String
    public var timing: String
    public var verified: Bool
    public var pipes: Int
    public var writerThreads: Int
    public var readerThreads: Int
    /// Pipe calls in the recording, runs counted.
    public var traceCalls: Int
    /// Calls made, all threads (short reads make more than the recording's).
    public var writeCalls: Int
    public var readCalls: Int
    public var bytesWritten: Int
    /// Bytes read, all pipes: the recording's reads, when nothing went wrong.
    public var bytesRead: Int
    /// What the recording's reads returned, all pipes.
    public var recordedBytesRead: Int
    /// Writes refused with EPIPE because every reader had gone (recorded ones included).
    public var brokenPipeWrites: Int
    /// First thread start to last thread end.
    public var wallNs: Int64
    public var bytesPerSecond: Double
    /// The recording's own span on its pipes (first call's start to last call's end).
    public var recordedSpanNs: Int64
    public var writerCPUNs: Int64
    public var readerCPUNs: Int64
    public var cpuNsPerByte: Double
    /// The first wrong byte of a checked pipe, or a reader that did not get its share.
    public var integrityError: String?
    public var engineCounters: EngineCounters?
    public var writerActivity = ThreadActivity()
    public var readerActivity = ThreadActivity()

    public var integrityOK: Bool { verified && integrityError == nil }
}

public enum ReplayWorkload {
    public static func run(_ config: ReplayConfig) throws -> ReplayResult {
        guard ReplayConfig.transports.contains(config.transport) else {
            throw HarnessError.unsupported("a replay runs over \(ReplayConfig.transports.map(\.rawValue).joined(separator: ", ")), not \(config.transport.rawValue)")
        }
        if !config.placement.isUnplaced { try config.placement.validate() }
        var system: PipeSystem?
        if config.transport == .engine {
            // One engine for every pipe of the recording, as one kernel held them: they share
            // maxpipekva.
            let s: PipeSystem
            do { s = try PipeSystem(config.options.engine.configuration) } catch {
                throw HarnessError.invalidArgument("engine configuration: \(error)")
            }
            if let node = config.placement.arenaNode, let base = s.arenaRange.baseAddress {
                try bindMemory(base, s.arenaRange.count, toNode: node, what: "engine arena")
            }
            system = s
        }
        var channels: [SharedChannel] = []
        defer { for c in channels { c.closeWriteEnd(); c.closeReadEnd() } }
        for p in config.trace.pipes {
            switch config.transport {
            case .engine: channels.append(try EngineChannel(system: system!, what: "replay pipe \(p.id)"))
            case .linuxPipe: channels.append(try KernelPipeChannel(pipeSize: config.options.kernelPipeSize, what: "replay linux-pipe \(p.id)"))
            default: channels.append(try UnixSocketChannel(type: .stream))
            }
        }
        return try run(config, over: channels, system: system)
    }

    struct ThreadReport: Sendable {
        var clock = SideClock()
        var calls = 0
        var bytes = 0
        var brokenPipe = 0
        var mismatch: Mismatch?
    }

    /// Runs over `channels` (one per pipe of the trace, in order), which it closes.
    static func run(_ config: ReplayConfig, over channels: [SharedChannel], system: PipeSystem?) throws -> ReplayResult {
        let plan = config.plan
        let barrier = SpinBarrier(parties: max(plan.count, 1))
        var writersLeft: [SharedCounter] = [], readersLeft: [SharedCounter] = []
        var checked: [Bool] = []
        for p in config.trace.pipes {
            let w = plan.filter { $0.pipe == p.id && $0.end == .write }.count
            let r = plan.filter { $0.pipe == p.id && $0.end == .read }.count
            writersLeft.append(SharedCounter(w))
            readersLeft.append(SharedCounter(r))
            checked.append(config.verify && w == 1 && r == 1)
            // An end nobody used in the recording is closed from the start.
            if w == 0 { channels[p.id].closeWriteEnd() }
            if r == 0 { channels[p.id].closeReadEnd() }
        }
        let shared = Unchecked(channels)
        let check = checked
        let wl = writersLeft, rl = readersLeft
        // A thread leaving its end: the last one out closes it.
        let leave: @Sendable (ReplayThreadPlan) -> Void = { t in
            if t.end == .write {
                if wl[t.pipe].addAndFetch(-1) == 0 { shared.value[t.pipe].closeWriteEnd() }
            } else if rl[t.pipe].addAndFetch(-1) == 0 { shared.value[t.pipe].closeReadEnd() }
        }
        var threads: [WorkerThread<ThreadReport>] = []
        for (i, t) in plan.enumerated() {
            do {
                threads.append(try WorkerThread<ThreadReport>.start {
                    defer { leave(t) }
                    return try replay(t, config, shared.value[t.pipe], checked: check[t.pipe], barrier)
                })
            } catch {
                for later in plan[i...] {
                    barrier.arrive(failed: true)
                    leave(later)
                }
                for x in threads { _ = try? x.join() }
                throw error
            }
        }
        let joined = threads.map { t in Swift.Result { try t.join() } }
        // A reader's error explains a writer's, so the readers' come first.
        for (t, j) in zip(plan, joined) where t.end == .read { _ = try j.get() }
        let reports = try joined.map { try $0.get() }

        let start = reports.map(\.clock.start).min() ?? 0
        let wall = max((reports.map(\.clock.end).max() ?? 0) - start, 1)
        var written = 0, read = 0, writeCalls = 0, readCalls = 0, broken = 0
        var writerCPU: Int64 = 0, readerCPU: Int64 = 0
        var integrity: String?
        var writerActivity: [ThreadActivity] = [], readerActivity: [ThreadActivity] = []
        for (t, r) in zip(plan, reports) {
            if t.end == .write {
                written += r.bytes; writeCalls += r.calls; broken += r.brokenPipe; writerCPU += r.clock.cpuNs
                writerActivity.append(r.clock.activity)
            } else {
                read += r.bytes; readCalls += r.calls; readerCPU += r.clock.cpuNs
                readerActivity.append(r.clock.activity)
                if integrity == nil, let m = r.mismatch { integrity = "pipe \(t.pipe): \(m)" }
                if integrity == nil, r.bytes != t.bytes {
                    integrity = "pipe \(t.pipe): process \(t.pid)'s reads got \(r.bytes) bytes, \(t.bytes) in the recording"
                }
            }
        }
        let recordedRead = plan.filter { $0.end == .read }.reduce(0) { $0 + $1.bytes }
        if !config.verify && read != recordedRead {
            throw HarnessError.unexpectedEOF(expected: recordedRead, received: read)
        }
        return ReplayResult(
            transport: config.transport.rawValue, trace: config.traceName, timing: config.timing.rawValue,
            verified: config.verify, pipes: config.trace.pipes.count,
            writerThreads: plan.filter { $0.end == .write }.count, readerThreads: plan.filter { $0.end == .read }.count,
            traceCalls: config.trace.callCount,
            writeCalls: writeCalls, readCalls: readCalls, bytesWritten: written, bytesRead: read,
            recordedBytesRead: recordedRead, brokenPipeWrites: broken, wallNs: wall,
            bytesPerSecond: Double(read) / (Double(wall) / 1e9), recordedSpanNs: config.trace.spanNs,
            writerCPUNs: writerCPU, readerCPUNs: readerCPU,
            cpuNsPerByte: Double(writerCPU + readerCPU) / Double(max(read, 1)),
            integrityError: config.verify ? integrity : nil, engineCounters: system.map(EngineCounters.init),
            writerActivity: ThreadActivity.sum(writerActivity), readerActivity: ThreadActivity.sum(readerActivity))
    }

    /// Busy until `ns` have passed: a recorded gap spent as the process spent it, on a CPU.
    @inline(__always) static func busy(_ ns: Int64) {
        let until = pb_monotonic_ns() + ns
        while pb_monotonic_ns() < until { pb_cpu_relax() }
    }

    private static func replay(_ t: ReplayThreadPlan, _ config: ReplayConfig, _ channel: SharedChannel,
                               checked: Bool, _ barrier: SpinBarrier) throws -> ThreadReport {
        let writing = t.end == .write
        var (buffer, report) = try startTogether(
            barrier, cpu: writing ? config.placement.writerCPU : config.placement.readerCPU,
            node: writing ? config.placement.writerNode : config.placement.readerNode,
            peerFailed: "replay: another thread failed to start") {
            (try AlignedBuffer(count: t.largest, node: writing ? config.placement.writerMemoryNode : config.placement.readerMemoryNode,
                               what: "replay buffer"), ThreadReport())
        }
        let payload = Payload()
        let recorded = config.timing == .recorded
        if writing && !checked { payload.fill(buffer.base, count: t.largest, streamOffset: 0) }
        report.clock.begin()
        if writing {
            writes: for c in t.calls {
                for _ in 0..<c.count {
                    if recorded, let gap = c.gapNs, gap > 0 { busy(gap) }
                    if c.error == "EPIPE" { report.brokenPipe += 1; break writes }
                    guard c.returned > 0 else { continue }
                    if checked { payload.fill(buffer.base, count: c.returned, streamOffset: report.bytes) }
                    do {
                        try channel.writeAll(buffer.base, c.returned)
                    } catch HarnessError.peerClosed {
                        report.brokenPipe += 1
                        break writes
                    }
                    report.calls += 1
                    report.bytes += c.returned
                }
            }
        } else {
            var remaining = t.bytes
            var lastAsked = 1
            var ended = false
            func readOnce(_ asked: Int) throws {
                let n = try channel.read(buffer.base, min(asked, remaining))
                if n == 0 { ended = true; return }
                if checked, report.mismatch == nil {
                    report.mismatch = payload.firstMismatch(buffer.base, count: n, streamOffset: report.bytes)
                }
                report.calls += 1
                report.bytes += n
                remaining -= n
            }
            reads: for c in t.calls {
                for _ in 0..<c.count {
                    if remaining == 0 || ended { break reads }
                    if recorded, let gap = c.gapNs, gap > 0 { busy(gap) }
                    guard c.returned > 0 else { continue }
                    lastAsked = c.asked
                    try readOnce(c.asked)
                }
            }
            while remaining > 0 && !ended { try readOnce(lastAsked) }
        }
        report.clock.finish()
        return report
    }
}
