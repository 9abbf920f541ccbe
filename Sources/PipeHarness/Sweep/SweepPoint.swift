import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// Every parameter a benchmark configuration has, by the name of its command-line flag and
/// config-file key. A sweep gives each axis one or more values. The engine's tunables are
/// not listed here: each is an `EngineTunable` (PipeEngine), declared once, and an axis
/// `.engine(tunable)`.
public enum SweepAxis: Hashable, Sendable, CaseIterable, RawRepresentable, CustomStringConvertible {
    // workload
    case workload, transport
    case writeSize, readSize, total
    case messageSize, iterations, warmupIterations, rate
    case pairs, pairCPUs, writers, mux
    case kernelPipeSize
    case verify
    // engine (PipeConfiguration)
    case engine(EngineTunable)
    case kvaTier
    // placement
    case writerCPU, readerCPU
    case writerNode, readerNode, memoryNode

    /// Every axis, in the order of the results columns (and of configuration labels).
    public static let allCases: [SweepAxis] =
        [.workload, .transport, .writeSize, .readSize, .total, .messageSize, .iterations, .warmupIterations, .rate,
         .pairs, .pairCPUs, .writers, .mux, .kernelPipeSize, .verify]
        + EngineTunable.all.map(SweepAxis.engine)
        + [.kvaTier, .writerCPU, .readerCPU, .writerNode, .readerNode, .memoryNode]

    private static let byName = Dictionary(uniqueKeysWithValues: allCases.map { ($0.rawValue, $0) })

    public init?(rawValue: String) {
        guard let axis = Self.byName[rawValue] else { return nil }
        self = axis
    }

    /// The flag and config-file key, without the dashes.
    public var rawValue: String {
        switch self {
        case .workload: return "workload"
        case .transport: return "transport"
        case .writeSize: return "write-size"
        case .readSize: return "read-size"
        case .total: return "total"
        case .messageSize: return "message-size"
        case .iterations: return "iterations"
        case .warmupIterations: return "warmup-iterations"
        case .rate: return "rate"
        case .pairs: return "pairs"
        case .pairCPUs: return "pair-cpus"
        case .writers: return "writers"
        case .mux: return "mux"
        case .kernelPipeSize: return "kernel-pipe-size"
        case .verify: return "verify"
        case .engine(let t): return t.flag
        case .kvaTier: return "kva-tier"
        case .writerCPU: return "writer-cpu"
        case .readerCPU: return "reader-cpu"
        case .writerNode: return "writer-node"
        case .readerNode: return "reader-node"
        case .memoryNode: return "memory-node"
        }
    }

    public var description: String { rawValue }

    public enum Kind: Sendable { case size, integer, text, number }

    public var kind: Kind {
        switch self {
        case .writeSize, .readSize, .total, .messageSize, .kernelPipeSize:
            return .size
        case .engine(let t):
            if case .size = t.kind { return .size }
            return .text
        case .iterations, .warmupIterations, .pairs, .writers, .kvaTier, .writerCPU, .readerCPU, .writerNode, .readerNode, .memoryNode:
            return .integer
        case .rate: return .number
        case .workload, .transport, .verify, .pairCPUs, .mux: return .text
        }
    }

    /// The config-file table the key may also appear under (`[engine]`, `[workload]`, `[placement]`).
    public var group: String {
        switch self {
        case .workload, .transport, .writeSize, .readSize, .total, .messageSize, .iterations, .warmupIterations, .rate, .verify,
             .pairs, .writers, .mux, .kernelPipeSize:
            return "workload"
        case .engine, .kvaTier:
            return "engine"
        case .writerCPU, .readerCPU, .writerNode, .readerNode, .memoryNode, .pairCPUs:
            return "placement"
        }
    }

    public var flag: String { "--\(rawValue)" }

    /// Short name used in configuration labels ("w=4K md=8K").
    var short: String {
        switch self {
        case .writeSize: return "w"
        case .readSize: return "r"
        case .messageSize: return "msg"
        case .engine(let t): return t.label
        case .writerCPU: return "wcpu"
        case .readerCPU: return "rcpu"
        case .writerNode: return "wnode"
        case .readerNode: return "rnode"
        case .memoryNode: return "mnode"
        case .kvaTier: return "kva"
        case .pairCPUs: return "cpus"
        case .kernelPipeSize: return "kps"
        default: return rawValue
        }
    }

    /// Expands one flag or config value (`64,4K..1M`, `engine,linux-pipe`, `0..3`) into the
    /// canonical spelling of each value; sizes come out as `SizeSpec.format` spells them.
    public func expand(_ text: String) throws -> [String] {
        switch kind {
        case .size:
            if self == .total, text.trimmingWhitespace().lowercased() == "auto" { return ["auto"] }
            return try ListSpec.sizes(text, flag: flag).map(SizeSpec.format)
        case .integer:
            return try ListSpec.integers(text, flag: flag).map(String.init)
        case .text where self == .pairCPUs:
            // Commas separate the pairs of one layout; several layouts: repeat the flag.
            return [try PairCPUs.parse(text).description]
        case .text, .number:
            return ListSpec.unique(try ListSpec.items(text, flag: flag))
        }
    }
}

extension EngineTunable {
    /// A value from its canonical text (as `SweepAxis.expand` gives it).
    func parse(_ text: String) throws -> Int {
        switch kind {
        case .size:
            do { return try SizeSpec.parse(text) } catch let e as SweepError { throw SweepError("--\(flag): \(e.message)") }
        case .choice(let names):
            guard let i = names.firstIndex(of: text) else {
                throw SweepError("--\(flag) '\(text)' is unknown; use one of: \(names.joined(separator: ", "))")
            }
            return i
        case .onOff:
            return try SweepPoint.onOff(text, .engine(self)) ? 1 : 0
        case .spin:
            return try SweepPoint.parseWait(text)
        }
    }

    /// The canonical text of a value.
    func format(_ value: Int) -> String {
        switch kind {
        case .size: return SizeSpec.format(value)
        case .choice(let names): return names.indices.contains(value) ? names[value] : String(value)
        case .onOff: return value != 0 ? "on" : "off"
        case .spin: return value == 0 ? "park" : "spin:\(value)"
        }
    }
}

/// The workloads the CLI knows by name.
public let knownWorkloads = WorkloadKind.allCases.map(\.rawValue)

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

/// One fully specified configuration: what to measure, over which transport, with which
/// engine tunables and placement. Nil engine fields keep PipeConfiguration's defaults.
public struct SweepPoint: Sendable, Hashable {
    public var workload: WorkloadKind = .stream
    public var transport: TransportKind = .engine
    public var writeSize = 64 * 1024
    /// Nil: the same as the write size.
    public var readSize: Int?
    /// Nil: automatic (`autoTotal`).
    public var totalBytes: Int?
    public var messageSize = 1
    public var iterations = 10_000
    /// Nil: min(1000, iterations / 10).
    public var warmupIterations: Int?
    public var rate: Double?
    /// pairs: K writer/reader pairs.
    public var pairs = 2
    /// pairs: each pair's CPUs; nil places every pair as --writer-cpu/--reader-cpu say.
    public var pairCPUs: PairCPUs?
    /// fanin: K writers into one reader.
    public var writers = 4
    public var mux: FanInMux = .poll
    /// linux-pipe, linux-vmsplice: F_SETPIPE_SZ for every kernel pipe; nil keeps the kernel
    /// default (64 KiB).
    public var kernelPipeSize: Int?
    public var verify = false
    /// The engine tunables this point sets (`EngineTunable` value); the others keep
    /// PipeConfiguration's defaults.
    public var engine: [EngineTunable: Int] = [:]
    public var kvaTier: Int?
    public var writerCPU: Int?
    public var readerCPU: Int?
    public var writerNode: Int?
    public var readerNode: Int?
    public var memoryNode: Int?
    /// A readable name, unique within one run.
    public var label = ""

    public init() {}

    /// Streams running at once: pairs for pairs, writers for fanin, else 1.
    public var concurrentStreams: Int {
        switch workload {
        case .pairs: return pairs
        case .fanin: return writers
        default: return 1
        }
    }

    /// The bytes per stream when none is given: 2048 writes, at least 16 MiB, at most 256 MiB
    /// in all; pairs and fanin split that among their streams (at least 1 MiB each).
    public var autoTotal: Int {
        let all = min(max(writeSize * 2048, 16 << 20), 256 << 20)
        return concurrentStreams == 1 ? all : max(all / concurrentStreams, 1 << 20)
    }
    public var effectiveTotal: Int { totalBytes ?? autoTotal }
    public var effectiveReadSize: Int { readSize ?? writeSize }
    public var effectiveWarmupIterations: Int { warmupIterations ?? min(1000, iterations / 10) }

    /// Sets one parameter from its canonical text (as `SweepAxis.expand` produces it).
    public mutating func apply(_ axis: SweepAxis, _ text: String) throws {
        func size() throws -> Int {
            do { return try SizeSpec.parse(text) } catch let e as SweepError { throw SweepError("\(axis.flag): \(e.message)") }
        }
        func int() throws -> Int {
            guard let v = Int(text) else { throw SweepError("\(axis.flag): '\(text)' is not a whole number") }
            return v
        }
        func positive(_ v: Int) throws -> Int {
            guard v > 0 else { throw SweepError("\(axis.flag) \(text): must be positive") }
            return v
        }
        func nonNegative(_ v: Int) throws -> Int {
            guard v >= 0 else { throw SweepError("\(axis.flag) \(text): must not be negative") }
            return v
        }
        switch axis {
        case .workload:
            guard let w = WorkloadKind(rawValue: text) else {
                throw SweepError("--workload '\(text)' is unknown; use one of: \(knownWorkloads.joined(separator: ", "))")
            }
            workload = w
        case .transport:
            guard let t = TransportKind(rawValue: text) else {
                throw SweepError("--transport '\(text)' is unknown; use one of: \(TransportKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            transport = t
        case .writeSize: writeSize = try positive(size())
        case .readSize: readSize = try positive(size())
        case .total: totalBytes = text == "auto" ? nil : try positive(size())
        case .messageSize: messageSize = try positive(size())
        case .iterations: iterations = try positive(int())
        case .warmupIterations: warmupIterations = try nonNegative(int())
        case .rate:
            guard let r = Double(text), r > 0, r.isFinite else {
                throw SweepError("--rate '\(text)': give messages per second as a positive number, e.g. --rate 10000")
            }
            rate = r
        case .pairs:
            let v = try positive(int())
            guard v <= 512 else { throw SweepError("--pairs \(text): at most 512 pairs (1024 threads)") }
            pairs = v
        case .pairCPUs: pairCPUs = try PairCPUs.parse(text)
        case .writers:
            let v = try positive(int())
            guard v <= 512 else { throw SweepError("--writers \(text): at most 512 writers") }
            writers = v
        case .mux:
            guard let m = FanInMux(rawValue: text) else {
                throw SweepError("--mux '\(text)' is unknown; use one of: \(FanInMux.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            mux = m
        case .kernelPipeSize:
            let v = try size()
            try Self.checkKernelPipeSize(v)
            kernelPipeSize = v
        case .verify: verify = try Self.onOff(text, axis)
        case .engine(let t): engine[t] = try t.parse(text)
        case .kvaTier:
            let v = try int()
            guard (0...100).contains(v) else { throw SweepError("--kva-tier \(text): a tier is a percentage of maxpipekva, 0 to 100") }
            kvaTier = v
        case .writerCPU: writerCPU = try nonNegative(int())
        case .readerCPU: readerCPU = try nonNegative(int())
        case .writerNode: writerNode = try nonNegative(int())
        case .readerNode: readerNode = try nonNegative(int())
        case .memoryNode: memoryNode = try nonNegative(int())
        }
    }

    /// The transports F_SETPIPE_SZ applies to.
    public static let kernelPipeTransports: [TransportKind] = [.linuxPipe, .linuxVmsplice]

    /// `--kernel-pipe-size` on its own: a power-of-two multiple of the page size (what the
    /// kernel would round any other size up to, so the row records what is in force), within
    /// F_SETPIPE_SZ's int. With `pipeMaxSize` (`/proc/sys/fs/pipe-max-size`) also at most
    /// that, unless `privileged` (CAP_SYS_RESOURCE may go above it).
    public static func checkKernelPipeSize(_ size: Int, pipeMaxSize: Int? = nil, privileged: Bool = false,
                                           pageSize: Int = systemPageSize) throws {
        let text = SizeSpec.format(size)
        guard size >= pageSize, size & (size - 1) == 0, size <= 1 << 30 else {
            throw SweepError("--kernel-pipe-size \(text): give a power of two of at least the page size (\(SizeSpec.format(pageSize))), at most 1G, e.g. 64K or 1M")
        }
        if let pipeMaxSize, !privileged, size > pipeMaxSize {
            throw SweepError("--kernel-pipe-size \(text): above /proc/sys/fs/pipe-max-size (\(SizeSpec.format(pipeMaxSize))); F_SETPIPE_SZ needs root (CAP_SYS_RESOURCE) for that: give at most \(SizeSpec.format(pipeMaxSize))")
        }
    }

    static func onOff(_ text: String, _ axis: SweepAxis) throws -> Bool {
        switch text.lowercased() {
        case "on", "true", "yes", "1": return true
        case "off", "false", "no", "0": return false
        default: throw SweepError("\(axis.flag) '\(text)': use on or off")
        }
    }

    /// `park` → 0, `spin` → the engine's default spin, `spin:NS` (suffix ns, us or ms allowed).
    public static func parseWait(_ text: String) throws -> Int {
        let bad = SweepError("--wait '\(text)': use park, spin or spin:NS (e.g. spin:20000 or spin:20us)")
        if text == "park" { return 0 }
        if text == "spin" { return WaitStrategy.spin.maxSpinNanoseconds }
        guard text.hasPrefix("spin:") else { throw bad }
        var number = String(text.dropFirst(5))
        var scale = 1
        for (suffix, s) in [("ns", 1), ("us", 1_000), ("µs", 1_000), ("ms", 1_000_000)] where number.hasSuffix(suffix) {
            number = String(number.dropLast(suffix.count))
            scale = s
            break
        }
        guard let v = Int(number), v >= 0 else { throw bad }
        return v * scale
    }

    /// The engine configuration this point asks for (defaults where nil), not yet validated.
    /// kva-pressure defaults maxpipekva to its own small arena (4 MiB) so that ballast is cheap.
    public var engineConfiguration: PipeConfiguration {
        var c = PipeConfiguration()
        if workload == .kvaPressure { c.maxpipekva = KVAPressureConfig.defaultMaxpipekva }
        for (t, v) in engine { t.set(v, in: &c) }
        return c
    }

    /// Checks everything that can be checked without running: the engine's own validation of
    /// its tunables, combinations the harness cannot measure, and missing harness pieces.
    public func validate() throws {
        do {
            try engineConfiguration.validate()
        } catch {
            throw SweepError("invalid engine configuration: \(error.message)\(Self.flagHint(error.message))")
        }
        if workload == .kvaPressure && transport != .engine {
            throw SweepError("--workload kva-pressure fills the engine's KVA, so it runs on --transport engine only (got \(transport.rawValue))")
        }
        if kvaTier != nil && workload != .kvaPressure {
            throw SweepError("--kva-tier applies to --workload kva-pressure (got \(workload)); add --workload kva-pressure or leave out --kva-tier")
        }
        if workload == .pingpong && transport == .memcpy {
            throw SweepError("--transport memcpy has no pingpong (it is one thread copying); use it with --workload stream")
        }
        if workload == .pairs && transport == .memcpy {
            throw SweepError("--transport memcpy has no pairs (it is one thread copying); use it with --workload stream")
        }
        if workload == .fanin && !FanInConfig.transports.contains(transport) {
            throw SweepError("--workload fanin runs over --transport \(FanInConfig.transports.map(\.rawValue).joined(separator: " or ")) (got \(transport.rawValue))")
        }
        if workload == .fanin && mux == .kqueue && transport != .engine {
            throw SweepError("--mux kqueue is the engine's; Linux has no kqueue, so --transport \(transport.rawValue) takes --mux poll")
        }
        if workload == .pairs, case .explicit(let xs)? = pairCPUs {
            guard xs.count == 1 || xs.count == pairs else {
                throw SweepError("--pair-cpus \(pairCPUs!): \(xs.count) pairs of CPUs for --pairs \(pairs); give one per pair, or one for all")
            }
        }
        if kernelPipeSize != nil && !Self.kernelPipeTransports.contains(transport) {
            throw SweepError("--kernel-pipe-size sets F_SETPIPE_SZ, so it applies to --transport linux-pipe or linux-vmsplice (got \(transport.rawValue))")
        }
        if workload == .pairs && pairCPUs != nil && (writerCPU != nil || readerCPU != nil) {
            throw SweepError("--pair-cpus and --writer-cpu/--reader-cpu both place the pairs; give one or the other")
        }
    }

    /// " (set with --mindirect)" for the first engine parameter a message names.
    static func flagHint(_ message: String) -> String {
        let words = message.split { !($0.isLetter || $0.isNumber || $0 == "_") }.map(String.init)
        for w in words {
            if let hit = EngineTunable.all.first(where: { $0.validationName == w }) { return " (set with --\(hit.flag))" }
        }
        return ""
    }

    /// Checks CPUs and NUMA nodes against the machine (names what exists), then the
    /// placement's own checks (`Placement.validate`: CPUs usable by this process, nodes with
    /// CPUs and memory), and `--kernel-pipe-size` against `/proc/sys/fs/pipe-max-size`
    /// (unless root), before any thread starts.
    public func validatePlacement(_ env: EnvironmentInfo) throws {
        if let kernelPipeSize {
            try Self.checkKernelPipeSize(kernelPipeSize, pipeMaxSize: env.pipeMaxSize, privileged: geteuid() == 0)
        }
        let cpuCount = env.onlineCPUs
        var named = [(SweepAxis.writerCPU, writerCPU), (.readerCPU, readerCPU)]
        if workload == .pairs, let pairCPUs { named += pairCPUs.cpus.map { (.pairCPUs, $0) } }
        for (axis, cpu) in named {
            if let cpu, cpu >= cpuCount {
                throw SweepError("\(axis.flag) \(cpu): no such CPU; this machine has CPUs 0-\(cpuCount - 1)")
            }
        }
        let nodes = env.numa.nodes
        let nodeList = nodes.isEmpty ? "none (no NUMA support: leave out the node flags)" : nodes.map { String($0.id) }.joined(separator: ", ")
        for (axis, node) in [(SweepAxis.writerNode, writerNode), (.readerNode, readerNode), (.memoryNode, memoryNode)] {
            guard let node else { continue }
            guard nodes.contains(where: { $0.id == node }) else {
                throw SweepError("\(axis.flag) \(node): no such NUMA node; this machine has node\(nodes.count == 1 ? "" : "s") \(nodeList)")
            }
        }
        for p in workload == .pairs ? pairPlacements : [placement] where !p.isUnplaced {
            do { try p.validate() } catch let e as HarnessError {
                throw SweepError("placement: \(e.description)")
            }
        }
    }

    /// Where the threads run and the buffers live (the harness's `Placement`).
    public var placement: Placement {
        var p = Placement(writerCPU: writerCPU, readerCPU: readerCPU, writerNode: writerNode, readerNode: readerNode)
        if let memoryNode { p.memoryNode = memoryNode }
        return p
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

    /// The harness workload this point describes.
    public func makeWorkload() throws -> Workload {
        try validate()
        let options = TransportOptions(kernelPipeSize: kernelPipeSize, engine: EngineOptions(configuration: engineConfiguration))
        switch workload {
        case .stream, .kvaPressure:
            let stream = StreamConfig(
                transport: transport, options: options, totalBytes: effectiveTotal,
                writeSize: writeSize, readSize: effectiveReadSize,
                verify: verify, placement: placement)
            if workload == .stream { return .stream(stream) }
            return .kvaPressure(KVAPressureConfig(
                tierPercent: kvaTier ?? 0, stream: stream, maxpipekva: engineConfiguration.maxpipekva))
        case .pingpong:
            return .pingpong(PingPongConfig(
                transport: transport, options: options, messageSize: messageSize,
                iterations: iterations, warmupIterations: effectiveWarmupIterations,
                verify: verify, ratePerSecond: rate, placement: placement))
        case .pairs:
            return .pairs(PairsConfig(
                transport: transport, options: options, pairs: pairs, bytesPerPair: effectiveTotal,
                writeSize: writeSize, readSize: effectiveReadSize, verify: verify, placements: pairPlacements))
        case .fanin:
            return .fanin(FanInConfig(
                transport: transport, options: options, writers: writers, bytesPerWriter: effectiveTotal,
                writeSize: writeSize, readSize: effectiveReadSize, mux: mux, verify: verify, placement: placement))
        default:
            throw SweepError("--workload '\(workload)' is unknown; use one of: \(knownWorkloads.joined(separator: ", "))")
        }
    }

    /// Canonical text of one parameter (nil: not set).
    public func value(_ axis: SweepAxis) -> String? {
        switch axis {
        case .workload: return workload.rawValue
        case .transport: return transport.rawValue
        case .writeSize: return SizeSpec.format(writeSize)
        case .readSize: return readSize.map(SizeSpec.format)
        case .total: return totalBytes.map(SizeSpec.format)
        case .messageSize: return SizeSpec.format(messageSize)
        case .iterations: return String(iterations)
        case .warmupIterations: return warmupIterations.map(String.init)
        case .rate: return rate.map { $0 == $0.rounded() ? String(Int($0)) : String($0) }
        case .pairs: return String(pairs)
        case .pairCPUs: return pairCPUs?.description
        case .writers: return String(writers)
        case .mux: return mux.rawValue
        case .kernelPipeSize: return kernelPipeSize.map(SizeSpec.format)
        case .verify: return verify ? "on" : "off"
        case .engine(let t): return engine[t].map(t.format)
        case .kvaTier: return kvaTier.map(String.init)
        case .writerCPU: return writerCPU.map(String.init)
        case .readerCPU: return readerCPU.map(String.init)
        case .writerNode: return writerNode.map(String.init)
        case .readerNode: return readerNode.map(String.init)
        case .memoryNode: return memoryNode.map(String.init)
        }
    }

    /// "stream engine w=4K md=8K": the workload and transport, then every axis in `varying`.
    public func describe(varying: [SweepAxis]) -> String {
        var parts = [workload.rawValue, transport.rawValue]
        // The shape of a pairs or fanin run is always named.
        // So is a kernel pipe size other than the default.
        let always: [SweepAxis] = (workload == .pairs ? [.pairs] : workload == .fanin ? [.writers, .mux] : []) + [.kernelPipeSize]
        for axis in SweepAxis.allCases where axis != .workload && axis != .transport
            && (varying.contains(axis) || always.contains(axis)) {
            if let v = value(axis) { parts.append("\(axis.short)=\(v)") }
        }
        return parts.joined(separator: " ")
    }
}

extension SweepPoint {
    /// Whether a parameter means anything for this point's workload and transport.
    public func applies(_ axis: SweepAxis) -> Bool {
        if axis == .kvaTier { return workload == .kvaPressure }
        switch axis.group {
        case "engine": return transport == .engine
        default: break
        }
        switch axis {
        case .writeSize, .readSize, .total: return [.stream, .kvaPressure, .pairs, .fanin].contains(workload)
        case .pairs, .pairCPUs: return workload == .pairs
        case .kernelPipeSize: return Self.kernelPipeTransports.contains(transport)
        case .writers, .mux: return workload == .fanin
        case .messageSize, .iterations, .warmupIterations, .rate: return workload == .pingpong
        case .readerCPU: return !(workload == .stream && transport == .memcpy)
        default: return true
        }
    }

    /// Resets parameters that do not apply (so equal measurements get equal points).
    public func normalized() -> SweepPoint {
        var p = self
        let d = SweepPoint()
        if transport != .engine { p.engine = [:] }
        if workload == .kvaPressure && kvaTier == nil { p.kvaTier = 0 }
        if workload != .kvaPressure { p.kvaTier = nil }
        if !applies(.writeSize) { p.writeSize = d.writeSize; p.readSize = nil; p.totalBytes = nil }
        if !applies(.messageSize) { p.messageSize = d.messageSize; p.iterations = d.iterations; p.warmupIterations = nil; p.rate = nil }
        if !applies(.readerCPU) { p.readerCPU = nil }
        if !applies(.pairs) { p.pairs = d.pairs; p.pairCPUs = nil }
        if !applies(.writers) { p.writers = d.writers; p.mux = d.mux }
        if !applies(.kernelPipeSize) { p.kernelPipeSize = nil }
        if workload == .fanin && transport != .engine { p.mux = .poll }   // Linux has only poll
        p.label = ""
        return p
    }
}
