import PipeResults
extension WorkloadKind {
    /// K writer/reader pairs at once, each on a pipe of its own.
    public static let pairs = PairsWorkload.kind
}

extension Workload {
    public static func pairs(_ config: PairsConfig) -> Workload { PairsWorkload.workload(config) }
}

extension PairsWorkload: WorkloadDefinition {
    public static let kind = WorkloadKind(named: "pairs")
    public static let purpose = "K streams at once"
    public static let metric = WorkloadMetric.bytesPerSecond("aggregate throughput")

    public static let pairs = WorkloadParameter("pairs", kind: .integer, default: "2") { text in
        let v = try WorkloadParameter.positive(text, "--pairs")
        guard v <= 512 else { throw SweepError("--pairs \(text): at most 512 pairs (1024 threads)") }
        return String(v)
    }
    /// Unset: every pair placed as --writer-cpu/--reader-cpu say. Commas separate the pairs of
    /// one layout; several layouts: repeat the flag.
    public static let pairCPUs = WorkloadParameter(
        "pair-cpus", kind: .text, group: "placement", short: "cpus",
        expand: { [try PairCPUs.parse($0).description] }
    ) { try PairCPUs.parse($0).description }
    public static let parameters = [pairs, pairCPUs]
    public static let alwaysLabelled: [SweepAxis] = [.pairs]

    public static func concurrentStreams(_ point: SweepPoint) -> Int { point.pairs }

    public static func validate(_ point: SweepPoint) throws {
        if point.transport == .memcpy {
            throw SweepError("--transport memcpy has no pairs (it is one thread copying); use it with --workload stream")
        }
        if case .explicit(let xs)? = point.pairCPUs {
            guard xs.count == 1 || xs.count == point.pairs else {
                throw SweepError("--pair-cpus \(point.pairCPUs!): \(xs.count) pairs of CPUs for --pairs \(point.pairs); give one per pair, or one for all")
            }
        }
        if point.pairCPUs != nil && (point.writerCPU != nil || point.readerCPU != nil) {
            throw SweepError("--pair-cpus and --writer-cpu/--reader-cpu both place the pairs; give one or the other")
        }
        if point.pairCPUs != nil, let preset = point.placementPreset {
            throw SweepError("--pair-cpus and --placement \(preset.rawValue) both place the pairs; give one or the other")
        }
    }

    public static func namedCPUs(_ point: SweepPoint) -> [(SweepAxis, Int)] {
        (point.pairCPUs?.cpus ?? []).map { (.pairCPUs, $0) }
    }

    public static func placements(_ point: SweepPoint) -> [Placement] { point.pairPlacements }

    public static func configuration(_ point: SweepPoint, options: TransportOptions) -> PairsConfig {
        PairsConfig(
            transport: point.transport, options: options, pairs: point.pairs, bytesPerPair: point.effectiveTotal,
            writeSize: point.writeSize, readSize: point.effectiveReadSize, verify: point.verify,
            placements: point.pairPlacements)
    }

    public static func measure(_ config: PairsConfig) throws -> PairsResult {
        let r = try run(config)
        if config.verify {
            for p in r.perPair { try p.checkIntegrity() }
        }
        return r
    }

    public static func probeCPUs(_ config: PairsConfig) -> (Int, Int)? {
        guard let p = config.placements.first, let a = p.writerCPU, let b = p.readerCPU else { return nil }
        return (a, b)
    }

    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {
        row.int("pairs", point.pairs)
        row.set("pair_cpus", point.pairCPUs?.description)
    }

    public static func summary(_ groups: [ResultsSummary.Group], _ s: inout SummaryContext) -> String? {
        "Pairs: K writer/reader pairs at once (aggregate GB/s, higher is better; ratio to linux-pipe = median of the per-round ratios)\n"
            + TextTable.render(multiStreamRows(groups, shape: "pairs", &s))
    }

    /// The rows of the pairs and fanin tables; `extra` adds cells after the CPU cost.
    static func multiStreamRows(_ groups: [ResultsSummary.Group], shape: String, extraHeaders: [String] = [],
                                extra: (ResultsSummary.Group) -> [String] = { _ in [] },
                                _ s: inout SummaryContext) -> [[String]] {
        var rows = [["configuration", "write", "K", "GB/s", "95% CI", "slowest-fastest", "CPU ns/B"] + extraHeaders + s.ratioHeaders]
        for g in groups {
            let (m, ci) = s.interval(g.samples("throughput_GBps"), format: "%.3f")
            let spread = [g.median("stream_min_GBps"), g.median("stream_max_GBps")].compactMap { $0 }
            let mm = spread.count == 2 ? String(format: "%.2f-%.2f", spread[0], spread[1]) : ""
            let cpu = g.median("cpu_ns_per_B").map { String(format: "%.3f", $0) } ?? ""
            rows.append(s.row([g.label, s.size(g, "write_size_B"), s.value(g, shape), m, ci, mm, cpu] + extra(g)
                + s.ratioCells(g, "throughput_GBps")))
        }
        return rows
    }
}

extension SweepAxis {
    public static let pairs = SweepAxis.parameter(PairsWorkload.pairs)
    public static let pairCPUs = SweepAxis.parameter(PairsWorkload.pairCPUs)
}

extension SweepPoint {
    /// pairs: K writer/reader pairs.
    public var pairs: Int {
        get { integer(PairsWorkload.pairs)! }
        set { self[PairsWorkload.pairs] = String(newValue) }
    }
    /// pairs: each pair's CPUs; nil places every pair as --writer-cpu/--reader-cpu say.
    public var pairCPUs: PairCPUs? {
        get { self[PairsWorkload.pairCPUs].flatMap { try? PairCPUs.parse($0) } }
        set { self[PairsWorkload.pairCPUs] = newValue?.description }
    }

    /// One placement per pair: `pairCPUs` (with the node flags), else `placement` for every
    /// pair, else none.
    public var pairPlacements: [Placement] {
        switch pairCPUs {
        case .explicit(let xs)?:
            return (0..<pairs).map { i in
                var p = placement
                let c = xs.count == 1 ? xs[0] : xs[i]
                p.writerCPU = c.writer
                p.readerCPU = c.reader
                return p
            }
        case .spread?:
            return Placement.spread(pairs: pairs, over: Topology.usableCPUList()).map { s in
                var p = placement
                p.writerCPU = s.writerCPU
                p.readerCPU = s.readerCPU
                return p
            }
        case nil:
            return placement.isUnplaced ? [] : [Placement](repeating: placement, count: pairs)
        }
    }
}

extension PairsResult: WorkloadResult {
    public var value: Double { aggregateBytesPerSecond }
    public var timedNs: Int64? { wallNs }

    public func record(into row: inout ResultsRow) {
        row.throughput(bytesPerSecond: aggregateBytesPerSecond, wallNs: wallNs, bytes: totalBytes,
                       writerCPUNs: perPair.reduce(0) { $0 + $1.writerCPUNs },
                       readerCPUNs: perPair.reduce(0) { $0 + $1.readerCPUNs },
                       cpuNsPerByte: cpuNsPerByte,
                       writeCalls: perPair.reduce(0) { $0 + $1.writeCalls }, readCalls: perPair.reduce(0) { $0 + $1.readCalls })
        row.streams(perPair.map(\.bytesPerSecond))
        row.list("writer_cpus_seen", perPair.flatMap(\.writerCPUsSeen))
        row.list("reader_cpus_seen", perPair.flatMap(\.readerCPUsSeen))
        row.int("kernel_pipe_size_B", perPair.first?.kernelPipeSize)
        row.bool("integrity_ok", verified ? integrityOK : nil)
        /// The node all pairs' buffers of one kind agree on (nil when they differ).
        func agreed(_ xs: [MemoryLocation?]) -> MemoryLocation? {
            let nodes = Set(xs.map { $0?.dominantNode })
            return nodes.count == 1 ? xs.first ?? nil : nil
        }
        row.memory(writer: agreed(perPair.map(\.writerMemory)), reader: agreed(perPair.map(\.readerMemory)),
                   arena: arenaMemory ?? agreed(perPair.map(\.arenaMemory)),
                   checked: perPair.flatMap { [$0.writerMemory, $0.readerMemory] }
                       + (arenaMemory.map { [$0] } ?? perPair.map(\.arenaMemory)))   // a shared arena once
        row.activity(writer: ThreadActivity.sum(perPair.map(\.writerActivity)), reader: ThreadActivity.sum(perPair.map(\.readerActivity)),
                     engine: transport == TransportKind.engine.rawValue)
    }
}

/// The CPUs of each pair of the pairs workload: `W:R,W:R,…` (writer CPU, reader CPU; one entry
/// per pair, or one entry for every pair), or `spread` (round-robin over the usable CPUs,
/// `Placement.spread`).
public enum PairCPUs: Sendable, Hashable, CustomStringConvertible {
    case explicit([PairCPU])
    case spread

    public struct PairCPU: Sendable, Hashable {
        public var writer: Int
        public var reader: Int
    }

    public static func parse(_ text: String) throws -> PairCPUs {
        let t = text.trimmingWhitespace()
        if t == "spread" { return .spread }
        let bad = SweepError("--pair-cpus '\(text)': give WRITER:READER CPUs per pair separated by commas, e.g. 0:1,1:0 (one entry applies to every pair), or spread")
        var out: [PairCPU] = []
        for item in t.split(separator: ",", omittingEmptySubsequences: false) {
            let sides = item.split(separator: ":", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
            guard sides.count == 2, let w = Int(sides[0]), let r = Int(sides[1]), w >= 0, r >= 0 else { throw bad }
            out.append(PairCPU(writer: w, reader: r))
        }
        guard !out.isEmpty else { throw bad }
        return .explicit(out)
    }

    public var description: String {
        switch self {
        case .spread: return "spread"
        case .explicit(let xs): return xs.map { "\($0.writer):\($0.reader)" }.joined(separator: ",")
        }
    }

    /// Every CPU named.
    public var cpus: [Int] {
        if case .explicit(let xs) = self { return xs.flatMap { [$0.writer, $0.reader] } }
        return []
    }
}


extension Repetition {
    /// The pairs result of this repetition, if it is one.
    public var pairs: PairsResult? { result as? PairsResult }
}
