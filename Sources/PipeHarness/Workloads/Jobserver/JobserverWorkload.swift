import CPipeSys
import Histogram
import PipeEngine

/// GNU make's jobserver: N workers share one pipe that holds T one-byte tokens. Each loop a
/// worker takes a token (a blocking one-byte read), works for `workNs` (busy, on the clock),
/// and writes the token back. Every hand-off is a wake-up of a reader sleeping on the pipe,
/// so this is the pipe's wait and wake-up path under as many waiters as there are workers.
///
/// The run ends when `takes` tokens have been taken in all (a worker that draws a token past
/// that puts it back and stops), so that how the takes were shared out — fairness — is what
/// the pipe's wake-up order and the scheduler made of it.
public struct JobserverConfig: Sendable {
    public var transport: TransportKind
    public var options: TransportOptions
    /// N, the worker threads.
    public var workers: Int
    /// T, the tokens in the pipe.
    public var tokens: Int
    /// The busy work done holding a token, ns (0: none, the hand-off alone).
    public var workNs: Int64
    /// Tokens taken per repetition, all workers together.
    public var takes: Int
    /// Tokens are numbered 0..<T: every take must draw one of them, and after the run the
    /// pipe must hold each exactly once.
    public var verify: Bool
    /// The writer fields apply to every worker and its buffer, `arenaNode` to the arena.
    public var placement: Placement
    /// One CPU per worker (`ThreadCPUs`); empty: every worker on `placement.writerCPU`.
    public var threadCPUs: [Int]

    public init(
        transport: TransportKind, options: TransportOptions = TransportOptions(), workers: Int, tokens: Int,
        workNs: Int64, takes: Int, verify: Bool = false, placement: Placement = Placement(), threadCPUs: [Int] = []
    ) {
        self.transport = transport
        self.options = options
        self.workers = workers
        self.tokens = tokens
        self.workNs = workNs
        self.takes = takes
        self.verify = verify
        self.placement = placement
        self.threadCPUs = threadCPUs
    }

    /// The transports the jobserver runs over.
    public static let transports: [TransportKind] = [.engine, .linuxPipe]
    /// At most this many tokens: each is a distinct byte value, and they all fit in a pipe's
    /// smallest buffer without a writer ever waiting (make itself caps its jobs far lower).
    public static let maxTokens = 256

    func workerCPU(_ i: Int) -> Int? { threadCPUs.isEmpty ? placement.writerCPU : threadCPUs[i % threadCPUs.count] }

    func validate() throws {
        guard Self.transports.contains(transport) else {
            throw HarnessError.unsupported("the jobserver workload runs over \(Self.transports.map(\.rawValue).joined(separator: " or ")), not \(transport.rawValue)")
        }
        guard workers > 0, workers <= 512 else { throw HarnessError.invalidArgument("jobserver workers must be 1 to 512, got \(workers)") }
        guard tokens > 0, tokens <= Self.maxTokens else { throw HarnessError.invalidArgument("jobserver tokens must be 1 to \(Self.maxTokens), got \(tokens)") }
        guard workNs >= 0 else { throw HarnessError.invalidArgument("jobserver work must not be negative, got \(workNs) ns") }
        guard takes > 0 else { throw HarnessError.invalidArgument("jobserver takes must be positive, got \(takes)") }
    }
}

/// What one jobserver run measured.
public struct JobserverResult: Codable, Sendable {
    public var transport: String
    public var workers: Int
    public var tokens: Int
    public var workNs: Int64
    public var takes: Int
    public var verified: Bool
    /// Tokens each worker took, in worker order; they add up to `takes`.
    public var perWorkerTakes: [Int]
    /// From the first worker leaving the start barrier to the last one finishing.
    public var wallNs: Int64
    /// takes / wall time.
    public var handoffsPerSecond: Double
    /// The most tokens a worker took over the fewest (nil when a worker took none).
    public var fairness: Double?
    /// Waits for a token: from the read's call to its return, ns, all workers.
    public var tokenWait: LatencySummary
    /// The busy work actually done per take, mean ns (at least `workNs`: a worker preempted
    /// while it works takes longer).
    public var workMeasuredNs: Double
    public var workerCPUNs: [Int64]
    /// A token drawn that was never put in, or the pipe not holding each token once at the end.
    public var tokenError: String?
    public var workerCPUsSeen: [[Int]]
    public var placement: Placement?
    public var threadCPUs: [Int]
    public var engineCounters: EngineCounters?
    public var workerActivity = ThreadActivity()

    public var integrityOK: Bool { verified && tokenError == nil && perWorkerTakes.reduce(0, +) == takes }
}

public struct JobserverMeasurement: Sendable {
    public var result: JobserverResult
    public var tokenWait: Histogram<UInt64>
}

public enum JobserverWorkload {
    public static func run(_ config: JobserverConfig) throws -> JobserverMeasurement {
        try config.validate()
        if !config.placement.isUnplaced { try config.placement.validate() }
        for cpu in config.threadCPUs { try Placement(writerCPU: cpu).validate() }
        var system: PipeSystem?
        let channel: SharedChannel
        if config.transport == .engine {
            let c = try EngineChannel(config.options.engine)
            if let node = config.placement.arenaNode, let base = c.system.arenaRange.baseAddress {
                try bindMemory(base, c.system.arenaRange.count, toNode: node, what: "engine arena")
            }
            channel = c
            system = c.system
        } else {
            channel = try KernelPipeChannel(pipeSize: config.options.kernelPipeSize, what: "jobserver linux-pipe")
        }
        defer { channel.closeWriteEnd(); channel.closeReadEnd() }
        // The tokens, as make puts them in before it starts its jobs.
        var tokens = (0..<config.tokens).map { UInt8($0 % 256) }
        try tokens.withUnsafeMutableBytes { try channel.writeAll($0.baseAddress!, $0.count) }
        var measurement = try run(config, channel, system)
        // Every token must still be in the pipe, once: the write end is closed, so the
        // reads below end at end of file.
        channel.closeWriteEnd()
        if config.verify {
            tokens = [UInt8](repeating: 0, count: config.tokens + 1)
            let n = try tokens.withUnsafeMutableBytes { try channel.readFully($0.baseAddress!, $0.count) }
            let back = tokens.prefix(n).sorted()
            if measurement.result.tokenError == nil && back != (0..<config.tokens).map({ UInt8($0 % 256) }) {
                measurement.result.tokenError = "the pipe held \(n) tokens at the end, not the \(config.tokens) put in, each once"
            }
        }
        return measurement
    }

    struct WorkerReport: Sendable {
        var clock = SideClock()
        var takes = 0
        var busyNs: Int64 = 0
        var histogram: Histogram<UInt64>
        var badToken: UInt8?
    }

    static func run(_ config: JobserverConfig, _ channel: SharedChannel, _ system: PipeSystem?) throws -> JobserverMeasurement {
        let n = config.workers
        let barrier = SpinBarrier(parties: n)
        let taken = SharedCounter(0)
        let shared = Unchecked(channel)
        var threads: [WorkerThread<WorkerReport>] = []
        for i in 0..<n {
            do {
                threads.append(try WorkerThread<WorkerReport>.start {
                    try worker(i, config, shared.value, barrier, taken)
                })
            } catch {
                for _ in i..<n { barrier.arrive(failed: true) }
                for t in threads { _ = try? t.join() }
                throw error
            }
        }
        let joined = threads.map { t in Swift.Result { try t.join() } }
        let reports = try joined.map { try $0.get() }
        let start = reports.map(\.clock.start).min()!
        let wall = max(reports.map(\.clock.end).max()! - start, 1)
        var wait = ContendWorkload.histogram()
        for r in reports { wait.add(r.histogram) }
        let per = reports.map(\.takes)
        let done = per.reduce(0, +)
        let bad = reports.compactMap(\.badToken).first
        let result = JobserverResult(
            transport: config.transport.rawValue, workers: n, tokens: config.tokens, workNs: config.workNs,
            takes: config.takes, verified: config.verify, perWorkerTakes: per, wallNs: wall,
            handoffsPerSecond: Double(done) / (Double(wall) / 1e9),
            fairness: per.min()! > 0 ? Double(per.max()!) / Double(per.min()!) : nil,
            tokenWait: LatencySummary(wait),
            workMeasuredNs: Double(reports.reduce(Int64(0)) { $0 + $1.busyNs }) / Double(max(done, 1)),
            workerCPUNs: reports.map(\.clock.cpuNs),
            tokenError: bad.map { "a worker drew token \($0), which was never put in (tokens 0 to \(config.tokens - 1))" },
            workerCPUsSeen: reports.map(\.clock.cpusSeen),
            placement: config.placement.isUnplaced ? nil : config.placement, threadCPUs: config.threadCPUs,
            engineCounters: system.map(EngineCounters.init),
            workerActivity: ThreadActivity.sum(reports.map(\.clock.activity)))
        if done != config.takes {
            throw HarnessError.invalidArgument("jobserver: \(done) tokens taken, not \(config.takes)")
        }
        return JobserverMeasurement(result: result, tokenWait: wait)
    }

    private static func worker(_ i: Int, _ config: JobserverConfig, _ channel: SharedChannel,
                               _ barrier: SpinBarrier, _ taken: SharedCounter) throws -> WorkerReport {
        var report = try startTogether(barrier, cpu: config.workerCPU(i), node: config.placement.writerNode,
                                       peerFailed: "jobserver: another worker failed to start") {
            WorkerReport(histogram: ContendWorkload.histogram())
        }
        var token: UInt8 = 0
        report.clock.begin()
        while true {
            let asked = pb_monotonic_ns()
            let got = try withUnsafeMutableBytes(of: &token) { try channel.read($0.baseAddress!, 1) }
            let holding = pb_monotonic_ns()
            guard got == 1 else { throw HarnessError.unexpectedEOF(expected: 1, received: 0) }
            if config.verify && Int(token) >= config.tokens && report.badToken == nil { report.badToken = token }
            let last = taken.addAndFetch(1) > config.takes
            if !last {
                _ = report.histogram.record(UInt64(max(holding - asked, 0)))
                if config.workNs > 0 {
                    let until = holding + config.workNs
                    var now = pb_monotonic_ns()
                    while now < until { pb_cpu_relax(); now = pb_monotonic_ns() }
                    report.busyNs += now - holding
                }
                report.takes += 1
            }
            try withUnsafeBytes(of: &token) { try channel.writeAll($0.baseAddress!, 1) }
            if last { break }
        }
        report.clock.finish()
        return report
    }
}
