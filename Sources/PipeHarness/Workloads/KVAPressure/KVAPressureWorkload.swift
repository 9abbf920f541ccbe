import CPipeSys
import PipeEngine
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The engine's KVA counters and sizes (its `sysctl`s), at one moment.
public struct EngineCounters: Codable, Sendable, Equatable {
    public var maxpipekva: Int
    public var pipekva: Int
    public var pipefragretry: Int
    public var pipeallocfail: Int
    public var piperesizefail: Int
    /// Live pipe pairs.
    public var pipes: Int
    /// Buffer reallocations (growth and shrink).
    public var resizes: Int
    public var directWrites: Int
    public var directBytes: Int
    public var holdFallbacks: Int

    public init(_ system: PipeSystem) {
        func get(_ name: String) -> Int { (try? system.sysctl(name)) ?? -1 }
        maxpipekva = get("kern.ipc.maxpipekva")
        pipekva = get("kern.ipc.pipekva")
        pipefragretry = get("kern.ipc.pipefragretry")
        pipeallocfail = get("kern.ipc.pipeallocfail")
        piperesizefail = get("kern.ipc.piperesizefail")
        pipes = get("engine.pipes")
        resizes = get("engine.resizes")
        directWrites = get("engine.direct_writes")
        directBytes = get("engine.direct_bytes")
        holdFallbacks = get("engine.hold_fallbacks")
    }

    /// pipekva as a percentage of maxpipekva.
    public var pipekvaPercent: Double { maxpipekva > 0 ? 100 * Double(pipekva) / Double(maxpipekva) : 0 }
}

/// The regimes of the seed's KVA policy (sys_pipe.c), by `pipekva` against `maxpipekva`.
public enum KVABand: String, Codable, Sendable, CaseIterable {
    /// pipekva ≤ maxpipekva/2: new pipes get PIPE_SIZE and may grow to BIG_PIPE_SIZE.
    case normal = "at-most-half"
    /// > 1/2: new pipes get SMALL_PIPE_SIZE; no buffer grows.
    case aboveHalf = "above-half"
    /// > 3/4: in addition, a buffer larger than SMALL_PIPE_SIZE holding at most
    /// SMALL_PIPE_SIZE bytes shrinks to SMALL_PIPE_SIZE on the next read or write.
    case aboveThreeQuarters = "above-three-quarters"
    /// The arena cannot hold another pipe: pipe2 fails with ENOMEM.
    case exhausted

    /// The band a pipekva value is in (never `exhausted`: that is a failure, not a level).
    public static func of(pipekva: Int, maxpipekva: Int) -> KVABand {
        if pipekva > (3 * maxpipekva) / 4 { return .aboveThreeQuarters }
        if pipekva > maxpipekva / 2 { return .aboveHalf }
        return .normal
    }
}

/// A stream workload in an engine whose KVA is already filled to a tier by idle pipes.
public struct KVAPressureConfig: Sendable {
    /// The default `maxpipekva` of this workload (4 MiB): small, so that ballast is cheap.
    public static let defaultMaxpipekva = 4 << 20

    /// The tier, as a percentage of maxpipekva: 0 is no ballast; 1–99 adds ballast pipes
    /// until pipekva is *above* that percentage (so that 50 and 75 are in the regimes the seed
    /// enters above 1/2 and 3/4); 100 adds them until pipe2 fails (exhausted).
    public var tierPercent: Int
    /// Bytes written into each ballast pipe as it is made (0 leaves them empty; 1 or 2 are
    /// idle pipes with a little data queued, as in a shell pipeline waiting on a slow stage).
    public var ballastQueuedBytes: Int
    /// The stream that runs on a fresh pipe after the ballast. Its transport must be
    /// `.engine`; `stream.options.engine.configuration` is the engine's configuration.
    public var stream: StreamConfig
    /// Check the workload pipe's buffer size on its first read and every this many reads
    /// after (and at the end); 0 checks only at creation and the end.
    public var bufferSizeSampleInterval: Int

    /// `maxpipekva` overrides the stream's engine configuration (default 4 MiB).
    public init(
        tierPercent: Int, stream: StreamConfig, maxpipekva: Int? = KVAPressureConfig.defaultMaxpipekva,
        ballastQueuedBytes: Int = 1, bufferSizeSampleInterval: Int = 64
    ) {
        self.tierPercent = tierPercent
        self.ballastQueuedBytes = ballastQueuedBytes
        self.stream = stream
        self.bufferSizeSampleInterval = bufferSizeSampleInterval
        if let maxpipekva { self.stream.options.engine.configuration.maxpipekva = maxpipekva }
    }

    public var engineConfiguration: PipeConfiguration { stream.options.engine.configuration }

    func validate() throws {
        guard stream.transport == .engine else {
            throw HarnessError.unsupported(
                "kva-pressure fills the engine's KVA, so it runs on the engine transport only; got \(stream.transport.rawValue)")
        }
        guard (0...100).contains(tierPercent) else {
            throw HarnessError.invalidArgument("KVA tier must be a percentage of maxpipekva from 0 to 100 (100 = exhausted), got \(tierPercent)")
        }
        guard (0...PipeEngine.PIPE_BUF).contains(ballastQueuedBytes) else {
            throw HarnessError.invalidArgument("ballast queued bytes must be 0…\(PipeEngine.PIPE_BUF), got \(ballastQueuedBytes)")
        }
        guard bufferSizeSampleInterval >= 0 else {
            throw HarnessError.invalidArgument("buffer size sample interval must not be negative")
        }
        do { try engineConfiguration.validate() } catch {
            throw HarnessError.invalidArgument("engine configuration: \(error)")
        }
        try stream.validate()
    }
}

public struct KVAPressureResult: Codable, Sendable {
    public var tierPercent: Int
    public var maxpipekva: Int
    /// The ballast target, bytes: pipekva is filled to just above this (tiers 1–99).
    public var targetBytes: Int
    public var ballastPipes: Int
    public var ballastQueuedBytes: Int
    /// The engine's buffer sizes (PIPE_SIZE, BIG_PIPE_SIZE, SMALL_PIPE_SIZE).
    public var pipeSize: Int
    public var bigPipeSize: Int
    public var smallPipeSize: Int
    /// The band the ballast put the engine in (exhausted when the workload pipe could not be made).
    public var band: KVABand
    /// Counters of the empty engine, after the ballast, and after the workload (before the
    /// ballast is closed).
    public var countersEmpty: EngineCounters
    public var countersBefore: EngineCounters
    public var countersAfter: EngineCounters
    /// The workload pipe's buffer size (`bufferSize` of its read descriptor) at creation,
    /// every distinct size seen during the run in order of first sight, and at the end.
    public var bufferSizeAtCreation: Int?
    public var bufferSizesSeen: [Int]
    public var bufferSizeAtEnd: Int?
    /// The stream's result; nil when the workload pipe could not be created.
    public var stream: StreamResult?
    /// Why the workload did not run (exhausted: pipe2 failed with ENOMEM), in words.
    public var workloadError: String?
    /// The engine's console messages during the run ("kern.ipc.maxpipekva exceeded; …").
    public var engineMessages: [String]

    /// Whether the workload pipe2 failed because the arena was full.
    public var exhausted: Bool { band == .exhausted }
    /// Throughput, or 0 where no pipe could be made.
    public var bytesPerSecond: Double { stream?.bytesPerSecond ?? 0 }
}

public enum KVAPressureWorkload {
    public static func run(_ config: KVAPressureConfig) throws -> KVAPressureResult {
        try config.validate()
        if !config.stream.placement.isUnplaced { try config.stream.placement.validate() }
        let engine = config.engineConfiguration
        let messages = MessageLog()
        let system: PipeSystem
        do {
            system = try PipeSystem(engine, log: { messages.append($0) })
        } catch {
            throw HarnessError.invalidArgument("engine configuration: \(error)")
        }
        // Bind the arena before any pipe exists, so that every buffer page lands there.
        if let node = config.stream.placement.arenaNode, let base = system.arenaRange.baseAddress {
            try bindMemory(base, system.arenaRange.count, toNode: node, what: "engine arena")
        }
        let empty = EngineCounters(system)
        let maxKVA = engine.maxpipekva
        let target = config.tierPercent * maxKVA / 100

        // Ballast. Each pair costs at most PIPE_SIZE + SMALL_PIPE_SIZE, so the loop ends; the
        // bound is a guard against an engine that would not.
        var ballast = 0
        var exhaustedByBallast = false
        let bound = maxKVA / engine.smallPipeSize + 2
        let queued = [UInt8](repeating: 0x42, count: max(config.ballastQueuedBytes, 1))
        while config.tierPercent > 0 && ballast < bound {
            if config.tierPercent < 100 && system.arenaAllocatedBytes > target { break }
            let fds: (Int32, Int32)
            do {
                fds = try system.pipe2()
            } catch .noMemory {
                exhaustedByBallast = true
                break
            } catch {
                throw HarnessError.system(call: "pipe2 (ballast)", errno: error.rawValue, context: "ballast pipe \(ballast)")
            }
            ballast += 1
            if config.ballastQueuedBytes > 0 {
                do {
                    let n = try queued.withUnsafeBytes { try system.write(fds.1, $0.baseAddress, config.ballastQueuedBytes) }
                    precondition(n == config.ballastQueuedBytes, "a ballast write of \(n) bytes was short")
                } catch let e as Errno {
                    throw HarnessError.system(call: "write (ballast)", errno: e.rawValue, context: "ballast pipe \(ballast)")
                }
            }
        }
        if config.tierPercent == 100 && !exhaustedByBallast {
            throw HarnessError.unsupported("the ballast did not exhaust the arena after \(ballast) pipes")
        }
        let before = EngineCounters(system)

        var result = KVAPressureResult(
            tierPercent: config.tierPercent, maxpipekva: maxKVA, targetBytes: target, ballastPipes: ballast,
            ballastQueuedBytes: config.ballastQueuedBytes, pipeSize: engine.pipeSize,
            bigPipeSize: engine.bigPipeSize, smallPipeSize: engine.smallPipeSize,
            band: KVABand.of(pipekva: before.pipekva, maxpipekva: maxKVA),
            countersEmpty: empty, countersBefore: before, countersAfter: before,
            bufferSizeAtCreation: nil, bufferSizesSeen: [], bufferSizeAtEnd: nil,
            stream: nil, workloadError: nil, engineMessages: [])

        let channel: EngineChannel
        do {
            channel = try EngineChannel(system: system)
        } catch HarnessError.system(_, let code, _) where code == ENOMEM {
            result.band = .exhausted
            result.workloadError =
                "pipe2 failed with ENOMEM: kern.ipc.maxpipekva is exhausted (pipekva \(before.pipekva) of \(maxKVA) bytes in \(ballast) ballast pipes); no workload pipe could be made"
            result.countersAfter = EngineCounters(system)
            result.engineMessages = messages.lines
            return result
        }
        result.bufferSizeAtCreation = try? system.bufferSize(channel.readFD)
        let sampler = BufferSizeSampler(channel, interval: config.bufferSizeSampleInterval)
        result.stream = try StreamWorkload.run(config.stream, over: sampler)
        result.bufferSizesSeen = sampler.sizesSeen
        result.bufferSizeAtEnd = sampler.sizeAtEnd
        result.countersAfter = EngineCounters(system)
        result.engineMessages = messages.lines
        return result
    }
}

/// The engine's console, kept instead of printed.
final class MessageLog: Sendable {
    private let storage = Mutex<[String]>([])
    func append(_ line: String) { storage.withLock { $0.append(line) } }
    var lines: [String] { storage.withLock { $0 } }
}

/// An engine channel that notes the forward buffer's size (`bufferSize` of the read
/// descriptor) as the reader goes: on its first read, every `interval` reads, and at the end
/// (just before the read end closes). The reader thread alone touches the notes until the
/// stream is joined.
final class BufferSizeSampler: ByteChannel, EngineBackedChannel, @unchecked Sendable {
    let inner: EngineChannel
    let interval: Int
    private var reads = 0
    private(set) var sizesSeen: [Int] = []
    private(set) var sizeAtEnd: Int?

    init(_ inner: EngineChannel, interval: Int) {
        self.inner = inner
        self.interval = interval
    }

    var engineSystem: PipeSystem { inner.system }

    private func sample() -> Int? {
        guard let size = try? inner.system.bufferSize(inner.readFD) else { return nil }
        if !sizesSeen.contains(size) { sizesSeen.append(size) }
        return size
    }

    func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int { try inner.write(base, count) }

    func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        let n = try inner.read(base, count)
        if reads == 0 || (interval > 0 && reads % interval == 0) { _ = sample() }
        reads += 1
        return n
    }

    func closeWriteEnd() { inner.closeWriteEnd() }

    func closeReadEnd() {
        sizeAtEnd = sample()
        inner.closeReadEnd()
    }
}
