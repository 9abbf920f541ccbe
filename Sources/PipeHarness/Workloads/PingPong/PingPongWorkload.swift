import CPipeSys
import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// Round-trip latency: a client sends `messageSize` bytes over one channel, a server reads them
/// whole and sends them back over a second channel, and the client times each round trip.
public struct PingPongConfig: Sendable {
    public var transport: TransportKind
    public var options: TransportOptions
    public var messageSize: Int
    /// Round trips recorded in the histogram.
    public var iterations: Int
    /// Round trips run first and not recorded (caches, page faults, the scheduler's guesses).
    public var warmupIterations: Int
    /// Where the client (the placement's writer side) and the server (its reader side) run
    /// and where their buffers live; `arenaNode` places both engine channels' arenas.
    public var placement: Placement
    public var clientCPU: Int? {
        get { placement.writerCPU }
        set { placement.writerCPU = newValue }
    }
    public var serverCPU: Int? {
        get { placement.readerCPU }
        set { placement.readerCPU = newValue }
    }
    /// Send the sequence-numbered `Payload` (message i is stream bytes [i·M, (i+1)·M)) and
    /// check every echoed byte.
    public var verify: Bool
    public var payload: Payload
    /// Fixed-rate mode: messages per second. Send i is due at start + i/rate and its latency
    /// is measured from that *intended* time, so a slow round trip that delays later sends is
    /// charged to them too (no coordinated omission). Nil: closed loop, each send right after
    /// the previous reply, latency from the actual send.
    public var ratePerSecond: Double?

    public init(
        transport: TransportKind, options: TransportOptions = TransportOptions(),
        messageSize: Int = 1, iterations: Int = 10_000, warmupIterations: Int = 1_000,
        clientCPU: Int? = nil, serverCPU: Int? = nil, verify: Bool = false,
        payload: Payload = Payload(), ratePerSecond: Double? = nil, placement: Placement = Placement()
    ) {
        self.placement = placement
        self.transport = transport
        self.options = options
        self.messageSize = messageSize
        self.iterations = iterations
        self.warmupIterations = warmupIterations
        if let clientCPU { self.placement.writerCPU = clientCPU }
        if let serverCPU { self.placement.readerCPU = serverCPU }
        self.verify = verify
        self.payload = payload
        self.ratePerSecond = ratePerSecond
    }

    func validate() throws {
        guard transport.isChannel else { throw HarnessError.unsupported("pingpong needs a channel; \(transport.rawValue) is not one") }
        guard messageSize > 0 else { throw HarnessError.invalidArgument("pingpong message size must be positive, got \(messageSize)") }
        guard iterations > 0 else { throw HarnessError.invalidArgument("pingpong iterations must be positive, got \(iterations)") }
        guard warmupIterations >= 0 else { throw HarnessError.invalidArgument("pingpong warm-up iterations must not be negative") }
        if let r = ratePerSecond, !(r > 0 && r.isFinite) {
            throw HarnessError.invalidArgument("pingpong rate must be a positive number of messages per second, got \(r)")
        }
    }
}

/// Percentiles of a latency distribution, in nanoseconds (HdrHistogram, 3 significant digits).
public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var min: UInt64
    public var p50: UInt64
    public var p90: UInt64
    public var p99: UInt64
    public var p999: UInt64
    public var p9999: UInt64
    public var max: UInt64
    public var mean: Double

    public init(_ h: Histogram<UInt64>) {
        count = Int(h.totalCount)
        min = h.min
        p50 = h.valueAtPercentile(50)
        p90 = h.valueAtPercentile(90)
        p99 = h.valueAtPercentile(99)
        p999 = h.valueAtPercentile(99.9)
        p9999 = h.valueAtPercentile(99.99)
        max = h.max
        mean = h.mean
    }
}

public struct PingPongResult: Codable, Sendable {
    public var transport: String
    public var messageSize: Int
    public var iterations: Int
    public var warmupIterations: Int
    public var clientCPU: Int?
    public var serverCPU: Int?
    public var verified: Bool
    public var ratePerSecond: Double?
    /// Round-trip latency, ns.
    public var latency: LatencySummary
    /// Fixed-rate mode: sends whose due time had already passed when the previous reply came
    /// back (the client could not keep the rate; their latency includes the wait).
    public var lateSends: Int
    /// Recorded part only (after warm-up).
    public var wallNs: Int64
    public var clientCPUNs: Int64
    public var serverCPUNs: Int64
    public var clientCPUsSeen: [Int]
    public var serverCPUsSeen: [Int]
    public var firstMismatch: Mismatch?
    /// The placement asked for (nil when none was).
    public var placement: Placement? = nil
    /// Where the client's buffers, the server's buffer and (engine) both arenas really were.
    public var clientMemory: MemoryLocation? = nil
    public var serverMemory: MemoryLocation? = nil
    public var arenaMemory: MemoryLocation? = nil
    /// What the client's and the server's threads did over the recorded round trips: the
    /// engine's events and the scheduler's view.
    public var clientActivity = ThreadActivity()
    public var serverActivity = ThreadActivity()

    public var integrityOK: Bool { verified && firstMismatch == nil }
}

/// A result plus the full histogram (which is large; `PingPongResult` keeps the percentiles).
public struct PingPongMeasurement: Sendable {
    public var result: PingPongResult
    public var histogram: Histogram<UInt64>
}

public enum PingPongWorkload {
    /// Values above this (60 s) are recorded as this: nothing sane takes longer.
    static let highestTrackableNs: UInt64 = 60_000_000_000

    /// Runs one pingpong measurement over two fresh channels of `config.transport`.
    public static func run(_ config: PingPongConfig) throws -> PingPongMeasurement {
        try config.validate()
        if !config.placement.isUnplaced { try config.placement.validate() }
        let ping = try makeChannel(config.transport, config.options)
        let pong = try makeChannel(config.transport, config.options)
        try bindEngineArena(ping, node: config.placement.arenaNode)
        try bindEngineArena(pong, node: config.placement.arenaNode)
        return try run(config, ping: ping, pong: pong)
    }

    /// Runs one pingpong measurement over channels the caller built (client → server `ping`,
    /// server → client `pong`). `config.transport` is only recorded.
    public static func run(_ config: PingPongConfig, ping: ByteChannel, pong: ByteChannel) throws -> PingPongMeasurement {
        try config.validate()
        let channels = Unchecked((ping: ping, pong: pong))
        let barrier = SpinBarrier(parties: 2)
        let server = try WorkerThread<ServerReport>.start {
            try serverSide(config, channels.value.ping, channels.value.pong, barrier)
        }
        let client: WorkerThread<ClientReport>
        do {
            client = try WorkerThread<ClientReport>.start {
                try clientSide(config, channels.value.ping, channels.value.pong, barrier)
            }
        } catch {
            barrier.arriveAndWait(failed: true)
            _ = try? server.join()
            throw error
        }
        let c = Swift.Result { try client.join() }
        let s = Swift.Result { try server.join() }
        let cr: ClientReport
        switch (c, s) {
        case (.success(let r), .success): cr = r
        case (.failure(let e), .success): throw e
        case (_, .failure(let e)): throw e   // the server's error explains the client's EOF
        }
        let sr = try s.get()
        var result = PingPongResult(
                transport: config.transport.rawValue, messageSize: config.messageSize,
                iterations: config.iterations, warmupIterations: config.warmupIterations,
                clientCPU: config.clientCPU, serverCPU: config.serverCPU, verified: config.verify,
                ratePerSecond: config.ratePerSecond, latency: LatencySummary(cr.histogram),
                lateSends: cr.lateSends, wallNs: cr.wallNs, clientCPUNs: cr.cpuNs,
                serverCPUNs: sr.cpuNs, clientCPUsSeen: cr.cpusSeen, serverCPUsSeen: sr.cpusSeen,
                firstMismatch: cr.mismatch)
        result.placement = config.placement.isUnplaced ? nil : config.placement
        result.clientMemory = cr.memory
        result.serverMemory = sr.memory
        result.clientActivity = cr.activity
        result.serverActivity = sr.activity
        switch (cr.arena, sr.arena) {
        case let (a?, b?): result.arenaMemory = a.merged(with: b)
        case let (a, b): result.arenaMemory = a ?? b
        }
        return PingPongMeasurement(result: result, histogram: cr.histogram)
    }

    struct ClientReport: Sendable {
        var histogram: Histogram<UInt64>
        var lateSends = 0
        var wallNs: Int64 = 0
        var cpuNs: Int64 = 0
        var cpusSeen: [Int] = []
        var mismatch: Mismatch?
        var activity = ThreadActivity()
        var memory: MemoryLocation?
        /// The pong channel's arena (which the client reads), checked before it is closed.
        var arena: MemoryLocation?
    }

    struct ServerReport: Sendable {
        var cpuNs: Int64 = 0
        var cpusSeen: [Int] = []
        var messages = 0
        var activity = ThreadActivity()
        var memory: MemoryLocation?
        /// The ping channel's arena (which the server reads), checked before it is closed.
        var arena: MemoryLocation?
    }

    private static func clientSide(
        _ config: PingPongConfig, _ ping: ByteChannel, _ pong: ByteChannel, _ barrier: SpinBarrier
    ) throws -> ClientReport {
        // Closing our sending end ends the server's loop; on error too, or it would wait forever.
        defer { ping.closeWriteEnd(); pong.closeReadEnd() }
        let m = config.messageSize
        // Placed first, so that the buffers are touched (allocated) where the thread runs.
        // The histogram is made before the barrier, as the buffers are, so that both sides
        // leave it together, and after placement, so that its counts live on the client's node.
        var (out, back, report) = try startTogether(barrier, cpu: config.placement.writerCPU, node: config.placement.writerNode,
                                                    peerFailed: "pingpong server failed to start") {
            let node = config.placement.writerMemoryNode
            return (try AlignedBuffer(count: m, node: node, what: "client send buffer"),
                    try AlignedBuffer(count: m, node: node, what: "client receive buffer"),
                    ClientReport(histogram: Histogram<UInt64>(
                        lowestDiscernibleValue: 1, highestTrackableValue: highestTrackableNs, numberOfSignificantValueDigits: .three)))
        }
        report.cpusSeen.append(Int(pb_sched_getcpu()))

        // One round trip. For vmsplice: `out` is rewritten only after the echo of the previous
        // message has been read, which the server sends only after reading that message whole,
        // so the pages it referred to have already been consumed.
        func roundTrip(_ i: Int) throws {
            try ping.writeAll(out.base, m)
            let got = try pong.readFully(back.base, m)
            if got < m { throw HarnessError.unexpectedEOF(expected: m, received: got) }
            if config.verify && report.mismatch == nil {
                report.mismatch = config.payload.firstMismatch(back.base, count: m, streamOffset: i * m)
            }
        }
        func prepare(_ i: Int) {
            if config.verify { config.payload.fill(out.base, count: m, streamOffset: i * m) }
        }
        if !config.verify { config.payload.fill(out.base, count: m, streamOffset: 0) }

        for i in 0..<config.warmupIterations {
            prepare(i)
            try roundTrip(i)
        }

        let activity0 = ThreadActivity.thisThread
        let cpu0 = pb_thread_cpu_ns()
        let start = pb_monotonic_ns()
        let interval = config.ratePerSecond.map { 1e9 / $0 }
        for k in 0..<config.iterations {
            let i = config.warmupIterations + k
            prepare(i)
            let t0: Int64
            if let interval {
                let due = start + Int64((Double(k) * interval).rounded())
                if pb_monotonic_ns() > due { report.lateSends += 1 } else { waitUntil(due) }
                t0 = due
            } else {
                t0 = pb_monotonic_ns()
            }
            try roundTrip(i)
            let t1 = pb_monotonic_ns()
            let ns = UInt64(max(t1 - t0, 1))
            _ = report.histogram.record(min(ns, highestTrackableNs))
        }
        report.wallNs = pb_monotonic_ns() - start
        report.cpuNs = pb_thread_cpu_ns() - cpu0
        report.activity = ThreadActivity.thisThread - activity0
        report.cpusSeen.append(Int(pb_sched_getcpu()))
        report.memory = out.location("client buffers").merged(with: back.location("client buffers"))
        report.arena = queryEngineArena(pong, requestedNode: config.placement.arenaNode)
        return report
    }

    private static func serverSide(
        _ config: PingPongConfig, _ ping: ByteChannel, _ pong: ByteChannel, _ barrier: SpinBarrier
    ) throws -> ServerReport {
        defer { pong.closeWriteEnd(); ping.closeReadEnd() }
        let m = config.messageSize
        let buffer = try startTogether(barrier, cpu: config.placement.readerCPU, node: config.placement.readerNode,
                                       peerFailed: "pingpong client failed to start") {
            try AlignedBuffer(count: m, node: config.placement.readerMemoryNode, what: "server buffer")
        }
        var report = ServerReport()
        report.cpusSeen.append(Int(pb_sched_getcpu()))
        let cpu0 = pb_thread_cpu_ns()
        // Activity from the answer to the last warm-up message on, the client's window.
        var activity0 = ThreadActivity.thisThread
        while true {
            let got = try ping.readFully(buffer.base, m)
            if got == 0 { break }   // the client is done
            if got < m { throw HarnessError.unexpectedEOF(expected: m, received: got) }
            try pong.writeAll(buffer.base, m)
            report.messages += 1
            if report.messages == config.warmupIterations { activity0 = ThreadActivity.thisThread }
        }
        report.cpuNs = pb_thread_cpu_ns() - cpu0   // includes the warm-up round trips
        report.activity = ThreadActivity.thisThread - activity0
        report.cpusSeen.append(Int(pb_sched_getcpu()))
        report.memory = buffer.location("server buffer")
        report.arena = queryEngineArena(ping, requestedNode: config.placement.arenaNode)
        return report
    }

    /// Waits for an absolute CLOCK_MONOTONIC time: sleeps while far from it (to leave the CPU
    /// to others), then spins the last stretch, because a sleep's wake-up is late by tens of
    /// microseconds on this kind of machine.
    static func waitUntil(_ due: Int64) {
        let spinWindow: Int64 = 200_000
        var now = pb_monotonic_ns()
        if due - now > spinWindow {
            let sleepNs = due - now - spinWindow
            var request = timespec(tv_sec: Int(sleepNs / 1_000_000_000), tv_nsec: Int(sleepNs % 1_000_000_000))
            var remaining = timespec()
            while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
            now = pb_monotonic_ns()
        }
        while now < due {
            pb_cpu_relax()
            now = pb_monotonic_ns()
        }
    }
}
