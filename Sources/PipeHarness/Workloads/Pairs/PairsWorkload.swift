import CPipeSys
import PipeEngine

/// K independent writer/reader pairs streaming at once, each over a channel of its own: how
/// throughput scales with pairs, cores and NUMA nodes.
public struct PairsConfig: Sendable {
    public var transport: TransportKind
    public var options: TransportOptions
    /// K, the number of pairs (2K threads).
    public var pairs: Int
    /// Bytes each pair sends.
    public var bytesPerPair: Int
    public var writeSize: Int
    public var readSize: Int
    public var verify: Bool
    public var payload: Payload
    /// One placement per pair, or empty to place none. See `Placement.spread`.
    public var placements: [Placement]
    /// Engine only: all pairs' pipes in one `PipeSystem` — one simulated kernel, sharing its
    /// KVA arena, counters and descriptor table, as pipes in one FreeBSD kernel do (true), or
    /// a `PipeSystem` per pair (false).
    public var sharedEngineSystem: Bool

    public init(
        transport: TransportKind, options: TransportOptions = TransportOptions(), pairs: Int,
        bytesPerPair: Int, writeSize: Int = 64 * 1024, readSize: Int = 64 * 1024,
        verify: Bool = false, payload: Payload = Payload(), placements: [Placement] = [],
        sharedEngineSystem: Bool = true
    ) {
        self.transport = transport
        self.options = options
        self.pairs = pairs
        self.bytesPerPair = bytesPerPair
        self.writeSize = writeSize
        self.readSize = readSize
        self.verify = verify
        self.payload = payload
        self.placements = placements
        self.sharedEngineSystem = sharedEngineSystem
    }

    /// The stream each pair runs.
    public func streamConfig(pair i: Int) -> StreamConfig {
        StreamConfig(
            transport: transport, options: options, totalBytes: bytesPerPair, writeSize: writeSize,
            readSize: readSize, verify: verify, payload: payload,
            placement: placements.isEmpty ? Placement() : placements[i])
    }

    func validate() throws {
        guard transport.isChannel else {
            throw HarnessError.unsupported("the pairs workload needs a channel; \(transport.rawValue) is not one")
        }
        guard pairs > 0 else { throw HarnessError.invalidArgument("pairs must be positive, got \(pairs)") }
        guard pairs <= 512 else { throw HarnessError.invalidArgument("at most 512 pairs (1024 threads), got \(pairs)") }
        guard placements.isEmpty || placements.count == pairs else {
            throw HarnessError.invalidArgument("give one placement per pair (\(pairs)) or none; got \(placements.count)")
        }
        if transport == .engine && sharedEngineSystem {
            let arenaNodes = Set(placements.map(\.arenaNode))
            guard arenaNodes.count <= 1 else {
                throw HarnessError.invalidArgument(
                    "pairs sharing one engine system share one arena, but their arena nodes differ: \(arenaNodes.map { $0.map(String.init) ?? "none" }.sorted())")
            }
        }
        for i in 0..<pairs { try streamConfig(pair: i).validate() }
    }
}

extension Placement {
    /// One placement per pair, round-robin over `cpus`: pair i's writer on cpus[2i mod n] and
    /// its reader on cpus[(2i + 1) mod n] (with `sameCPU`, both on cpus[i mod n]). Memory is
    /// left to first touch, which puts it on the node of the CPU that touches it.
    public static func spread(pairs: Int, over cpus: [Int], sameCPU: Bool = false) -> [Placement] {
        guard !cpus.isEmpty else { return [] }
        return (0..<pairs).map { i in
            sameCPU
                ? Placement(writerCPU: cpus[i % cpus.count], readerCPU: cpus[i % cpus.count])
                : Placement(writerCPU: cpus[(2 * i) % cpus.count], readerCPU: cpus[(2 * i + 1) % cpus.count])
        }
    }
}

public struct PairsResult: Codable, Sendable {
    public var transport: String
    public var pairs: Int
    public var bytesPerPair: Int
    public var writeSize: Int
    public var readSize: Int
    public var verified: Bool
    public var sharedEngineSystem: Bool
    /// Each pair's stream, with its own wall time, throughput, CPU times (per thread), CPUs
    /// seen and memory locations.
    public var perPair: [StreamResult]
    /// Bytes all readers received.
    public var totalBytes: Int
    /// From the first thread leaving the common start barrier to the last one finishing.
    public var wallNs: Int64
    /// totalBytes / wall time.
    public var aggregateBytesPerSecond: Double
    public var minPairBytesPerSecond: Double
    public var maxPairBytesPerSecond: Double
    /// CPU time of all 2K threads together, and per byte delivered.
    public var totalCPUNs: Int64
    public var cpuNsPerByte: Double
    /// The shared engine system's counters after the run (engine with a shared system only).
    public var engineCounters: EngineCounters?
    /// The shared engine arena's pages, checked once all streams had ended.
    public var arenaMemory: MemoryLocation?

    public var integrityOK: Bool { verified && perPair.allSatisfy(\.integrityOK) }
}

public enum PairsWorkload {
    public static func run(_ config: PairsConfig) throws -> PairsResult {
        try config.validate()
        let topology = config.placements.contains(where: { !$0.isUnplaced }) ? Topology.current() : nil
        if let topology {
            for (i, p) in config.placements.enumerated() {
                do { try p.validate(against: topology) } catch let e as HarnessError {
                    throw HarnessError.invalidArgument("pair \(i): \(e)")
                }
            }
        }
        // Channels first: a failure here starts no thread.
        var sharedSystem: PipeSystem?
        var channels: [ByteChannel] = []
        if config.transport == .engine && config.sharedEngineSystem {
            let system: PipeSystem
            do { system = try PipeSystem(config.options.engine.configuration) } catch {
                throw HarnessError.invalidArgument("engine configuration: \(error)")
            }
            sharedSystem = system
            for _ in 0..<config.pairs { channels.append(try EngineChannel(system: system)) }
            try bindEngineArena(channels[0], node: config.placements.first?.arenaNode)
        } else {
            for i in 0..<config.pairs {
                let c = try makeChannel(config.transport, config.options)
                try bindEngineArena(c, node: config.placements.isEmpty ? nil : config.placements[i].arenaNode)
                channels.append(c)
            }
        }

        let barrier = SpinBarrier(parties: 2 * config.pairs)
        let finishLine = FinishLine(parties: config.pairs)
        var launched: [StreamWorkload.Launched] = []
        for i in 0..<config.pairs {
            // If pair i cannot start, the threads already waiting at the barrier are released:
            // the parties of pairs i+1… arrive, failed (and pair i's two, or its reader, which
            // `launch` does); readers that never started cross the finish line.
            var released = false
            let releaseLater = {
                for _ in 0..<(2 * (config.pairs - i - 1)) { barrier.arrive(failed: true) }
                for _ in i..<config.pairs { finishLine.cross() }
            }
            do {
                launched.append(try StreamWorkload.launch(
                    config.streamConfig(pair: i), over: channels[i], barrier: barrier,
                    finishLine: finishLine, queryArena: sharedSystem == nil || i == 0,
                    releaseOthers: { releaseLater(); released = true }))
            } catch {
                if !released {   // the writer did not start: nothing of pair i arrived
                    barrier.arrive(failed: true)
                    barrier.arrive(failed: true)
                    releaseLater()
                }
                for l in launched { _ = try? l.finish() }
                throw error
            }
        }
        var outcomes: [Swift.Result<(result: StreamResult, start: Int64, end: Int64), Error>] = []
        for l in launched { outcomes.append(Swift.Result { try l.finishTimed() }) }
        let finished = try outcomes.map { try $0.get() }

        let perPair = finished.map(\.result)
        let start = finished.map(\.start).min()!
        let end = finished.map(\.end).max()!
        let wall = max(end - start, 1)
        let total = perPair.reduce(0) { $0 + $1.bytesReceived }
        let cpu = perPair.reduce(Int64(0)) { $0 + $1.writerCPUNs + $1.readerCPUNs }
        return PairsResult(
            transport: config.transport.rawValue, pairs: config.pairs, bytesPerPair: config.bytesPerPair,
            writeSize: config.writeSize, readSize: config.readSize, verified: config.verify,
            sharedEngineSystem: sharedSystem != nil, perPair: perPair, totalBytes: total, wallNs: wall,
            aggregateBytesPerSecond: Double(total) / (Double(wall) / 1e9),
            minPairBytesPerSecond: perPair.map(\.bytesPerSecond).min()!,
            maxPairBytesPerSecond: perPair.map(\.bytesPerSecond).max()!,
            totalCPUNs: cpu, cpuNsPerByte: Double(cpu) / Double(max(total, 1)),
            engineCounters: sharedSystem.map(EngineCounters.init),
            arenaMemory: sharedSystem == nil ? nil : perPair.first?.arenaMemory)
    }
}
