import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// Every parameter a benchmark configuration has, by the name of its command-line flag and
/// config-file key. A sweep gives each axis one or more values. The engine's tunables are
/// not listed here: each is an `EngineTunable` (PipeEngine), declared once, and an axis
/// `.engine(tunable)`; nor are the parameters of one workload: each is a `WorkloadParameter`
/// in the workload's folder, and an axis `.parameter(p)`.
public enum SweepAxis: Hashable, Sendable, CaseIterable, RawRepresentable, CustomStringConvertible {
    // common to the workloads
    case workload, transport
    case writeSize, readSize, total
    case kernelPipeSize
    case verify
    // one workload's own
    case parameter(WorkloadParameter)
    // engine (PipeConfiguration)
    case engine(EngineTunable)
    // placement
    case placement
    case writerCPU, readerCPU
    case writerNode, readerNode, memoryNode

    /// Every axis, in the order of the results columns (and of configuration labels): the
    /// workloads' own parameters (in registry order) after the sizes, those of the
    /// `[engine]` table after the engine's tunables.
    public static let allCases: [SweepAxis] = {
        let own = WorkloadKind.allParameters
        return [.workload, .transport, .writeSize, .readSize, .total]
            + own.filter { $0.group != "engine" }.map(SweepAxis.parameter)
            + [.kernelPipeSize, .verify]
            + EngineTunable.all.map(SweepAxis.engine)
            + own.filter { $0.group == "engine" }.map(SweepAxis.parameter)
            + [.placement, .writerCPU, .readerCPU, .writerNode, .readerNode, .memoryNode]
    }()

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
        case .kernelPipeSize: return "kernel-pipe-size"
        case .verify: return "verify"
        case .parameter(let p): return p.name
        case .engine(let t): return t.flag
        case .placement: return "placement"
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
        case .writeSize, .readSize, .total, .kernelPipeSize:
            return .size
        case .parameter(let p): return p.kind
        case .engine(let t):
            if case .size = t.kind { return .size }
            return .text
        case .writerCPU, .readerCPU, .writerNode, .readerNode, .memoryNode:
            return .integer
        case .workload, .transport, .verify, .placement: return .text
        }
    }

    /// The config-file table the key may also appear under (`[engine]`, `[workload]`, `[placement]`).
    public var group: String {
        switch self {
        case .workload, .transport, .writeSize, .readSize, .total, .verify, .kernelPipeSize:
            return "workload"
        case .parameter(let p): return p.group
        case .engine:
            return "engine"
        case .placement, .writerCPU, .readerCPU, .writerNode, .readerNode, .memoryNode:
            return "placement"
        }
    }

    public var flag: String { "--\(rawValue)" }

    /// Short name used in configuration labels ("w=4K md=8K").
    var short: String {
        switch self {
        case .writeSize: return "w"
        case .readSize: return "r"
        case .parameter(let p): return p.short
        case .engine(let t): return t.label
        case .placement: return "place"
        case .writerCPU: return "wcpu"
        case .readerCPU: return "rcpu"
        case .writerNode: return "wnode"
        case .readerNode: return "rnode"
        case .memoryNode: return "mnode"
        case .kernelPipeSize: return "kps"
        default: return rawValue
        }
    }

    /// Expands one flag or config value (`64,4K..1M`, `engine,linux-pipe`, `0..3`) into the
    /// canonical spelling of each value; sizes come out as `SizeSpec.format` spells them.
    public func expand(_ text: String) throws -> [String] {
        if case .parameter(let p) = self, let expand = p.expandText { return try expand(text) }
        switch kind {
        case .size:
            if self == .total, text.trimmingWhitespace().lowercased() == "auto" { return ["auto"] }
            return try ListSpec.sizes(text, flag: flag).map(SizeSpec.format)
        case .integer:
            return try ListSpec.integers(text, flag: flag).map(String.init)
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

/// One fully specified configuration: what to measure, over which transport, with which
/// engine tunables and placement. Nil engine fields keep PipeConfiguration's defaults. The
/// workloads' own parameters are kept as canonical text (`self[parameter]`); each workload's
/// folder gives them typed names (`messageSize`, `writers`).
public struct SweepPoint: Sendable, Hashable {
    public var workload: WorkloadKind = .stream
    public var transport: TransportKind = .engine
    public var writeSize = 64 * 1024
    /// Nil: the same as the write size.
    public var readSize: Int?
    /// Nil: automatic (`autoTotal`).
    public var totalBytes: Int?
    /// linux-pipe, linux-vmsplice: F_SETPIPE_SZ for every kernel pipe; nil keeps the kernel
    /// default (64 KiB).
    public var kernelPipeSize: Int?
    public var verify = false
    /// The engine tunables this point sets (`EngineTunable` value); the others keep
    /// PipeConfiguration's defaults.
    public var engine: [EngineTunable: Int] = [:]
    /// The workloads' own parameters that differ from their defaults, by name, as canonical text.
    private var own: [String: String] = [:]
    /// A placement preset (`--placement`): it chooses the CPUs and the memory nodes; the
    /// writer and reader nodes, when given, choose its nodes (`Placement.preset`).
    public var placementPreset: PlacementPreset?
    public var writerCPU: Int?
    public var readerCPU: Int?
    public var writerNode: Int?
    public var readerNode: Int?
    public var memoryNode: Int?
    /// A readable name, unique within one run.
    public var label = ""

    public init() {}

    /// A workload parameter's canonical text: the value set, else its default (nil: unset).
    /// Setting the default (or nil) forgets the value, so equal configurations are equal points.
    public subscript(_ parameter: WorkloadParameter) -> String? {
        get { own[parameter.name] ?? parameter.defaultValue }
        set { own[parameter.name] = newValue == parameter.defaultValue ? nil : newValue }
    }

    /// A workload parameter that is a size or a whole number, as a number.
    public func size(_ parameter: WorkloadParameter) -> Int? { self[parameter].flatMap { try? SizeSpec.parse($0) } }
    public func integer(_ parameter: WorkloadParameter) -> Int? { self[parameter].flatMap { Int($0) } }

    /// The workload's definition.
    public var definition: any WorkloadDefinition.Type { workload.definition }

    /// Streams running at once: pairs for pairs, writers for fanin, else 1.
    public var concurrentStreams: Int { definition.concurrentStreams(self) }

    /// The bytes per stream when none is given: 2048 writes, at least 16 MiB, at most 256 MiB
    /// in all; pairs and fanin split that among their streams (at least 1 MiB each).
    public var autoTotal: Int {
        let all = min(max(writeSize * 2048, 16 << 20), 256 << 20)
        return concurrentStreams == 1 ? all : max(all / concurrentStreams, 1 << 20)
    }
    public var effectiveTotal: Int { totalBytes ?? autoTotal }
    public var effectiveReadSize: Int { readSize ?? writeSize }

    /// Sets one parameter from its canonical text (as `SweepAxis.expand` produces it).
    public mutating func apply(_ axis: SweepAxis, _ text: String) throws {
        func size() throws -> Int {
            do { return try SizeSpec.parse(text) } catch let e as SweepError { throw SweepError("\(axis.flag): \(e.message)") }
        }
        func int() throws -> Int { try WorkloadParameter.wholeNumber(text, axis.flag) }
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
        case .kernelPipeSize:
            let v = try size()
            try Self.checkKernelPipeSize(v)
            kernelPipeSize = v
        case .verify: verify = try Self.onOff(text, axis)
        case .parameter(let p): self[p] = try p.accept(text)
        case .engine(let t): engine[t] = try t.parse(text)
        case .placement:
            guard let p = PlacementPreset(rawValue: text) else {
                throw SweepError("--placement '\(text)' is unknown; use one of: \(PlacementPreset.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            placementPreset = p
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
        guard text.hasPrefix("spin:"), let ns = DurationSpec.nanoseconds(String(text.dropFirst(5)), bareUnitNs: 1) else { throw bad }
        return Int(ns)
    }

    /// The engine configuration this point asks for (defaults where nil), not yet validated.
    /// A workload may have defaults of its own (kva-pressure: a small arena, so that ballast
    /// is cheap).
    public var engineConfiguration: PipeConfiguration {
        var c = PipeConfiguration()
        definition.engineDefaults(&c)
        for (t, v) in engine { t.set(v, in: &c) }
        return c
    }

    /// Checks everything that can be checked without running: the engine's own validation of
    /// its tunables, the workload's own checks (`WorkloadDefinition.validate`), and
    /// parameters given for a transport they do not apply to.
    public func validate() throws {
        do {
            try engineConfiguration.validate()
        } catch {
            throw SweepError("invalid engine configuration: \(error.message)\(Self.flagHint(error.message))")
        }
        for p in WorkloadKind.allParameters where !definition.parameters.contains(p) && own[p.name] != nil && p.refusedElsewhere {
            throw SweepError("\(p.flag) applies to --workload \(p.usersListed) (got \(workload)); add --workload \(p.owner) or leave out \(p.flag)")
        }
        if let preset = placementPreset {
            let given = [(SweepAxis.writerCPU, writerCPU), (.readerCPU, readerCPU), (.memoryNode, memoryNode)].filter { $0.1 != nil }
            if let first = given.first {
                throw SweepError("--placement \(preset.rawValue) chooses the CPUs and where memory goes; leave out \(first.0.flag) (--writer-node and --reader-node choose the preset's nodes)")
            }
            if preset != .crossNode, let w = writerNode, let r = readerNode, w != r {
                throw SweepError("--placement \(preset.rawValue) puts both sides on one node; --writer-node \(w) and --reader-node \(r) differ (use cross-node)")
            }
        }
        try definition.validate(self)
        if kernelPipeSize != nil && !Self.kernelPipeTransports.contains(transport) {
            throw SweepError("--kernel-pipe-size sets F_SETPIPE_SZ, so it applies to --transport linux-pipe or linux-vmsplice (got \(transport.rawValue))")
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
        named += definition.namedCPUs(self).map { ($0.0, Optional($0.1)) }
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
        if placementPreset != nil {
            do { _ = try resolvedPreset() } catch let e as HarnessError {
                throw SweepError("--placement \(placementPreset!.rawValue): \(e.description)")
            }
        }
        for p in definition.placements(self) where !p.isUnplaced {
            do { try p.validate() } catch let e as HarnessError {
                throw SweepError("placement: \(e.description)")
            }
        }
    }

    /// Where the threads run and the buffers live (the harness's `Placement`): the preset
    /// resolved on this machine, else the explicit flags. A preset this machine cannot give
    /// is refused by `validatePlacement`; here it places nothing.
    public var placement: Placement {
        if placementPreset != nil { return (try? resolvedPreset()) ?? Placement() }
        var p = Placement(writerCPU: writerCPU, readerCPU: readerCPU, writerNode: writerNode, readerNode: readerNode)
        if let memoryNode { p.memoryNode = memoryNode }
        return p
    }

    /// The topology presets are resolved against: this process's, read once.
    static let presetTopology: Topology = .current()

    /// `--placement` on this machine, with `--writer-node` choosing the home node and
    /// `--reader-node` the other node of cross-node.
    func resolvedPreset() throws -> Placement? {
        guard let preset = placementPreset else { return nil }
        switch preset {
        case .crossNode:
            return try Placement.preset(preset, topology: Self.presetTopology, node: writerNode, otherNode: readerNode)
        case .sameCore, .crossCore, .sameNode:
            return try Placement.preset(preset, topology: Self.presetTopology, node: writerNode ?? readerNode)
        }
    }

    /// The options every transport is built with.
    public var transportOptions: TransportOptions {
        TransportOptions(kernelPipeSize: kernelPipeSize, engine: EngineOptions(configuration: engineConfiguration))
    }

    /// The harness workload this point describes.
    public func makeWorkload() throws -> Workload {
        try validate()
        _ = try resolvedPreset()   // a preset this machine cannot give places nothing: refuse it
        var w = definition.makeWorkload(self)
        if totalBytes == nil && applies(.total) {
            // --total auto: the runner may size it by time, from this byte default up.
            let point = self
            w.sizing = TimeSizing(total: autoTotal, granule: writeSize) { total in
                var p = point
                p.totalBytes = total
                return try p.makeWorkload()
            }
        }
        return w
    }

    /// Canonical text of one parameter (nil: not set).
    public func value(_ axis: SweepAxis) -> String? {
        switch axis {
        case .workload: return workload.rawValue
        case .transport: return transport.rawValue
        case .writeSize: return SizeSpec.format(writeSize)
        case .readSize: return readSize.map(SizeSpec.format)
        case .total: return totalBytes.map(SizeSpec.format)
        case .kernelPipeSize: return kernelPipeSize.map(SizeSpec.format)
        case .verify: return verify ? "on" : "off"
        case .parameter(let p): return self[p]
        case .engine(let t): return engine[t].map(t.format)
        case .placement: return placementPreset?.rawValue
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
        // The shape of a multi-stream run is always named, and so is a kernel pipe size other
        // than the default.
        let always = definition.alwaysLabelled + [.kernelPipeSize]
        for axis in SweepAxis.allCases where axis != .workload && axis != .transport
            && (varying.contains(axis) || always.contains(axis)) {
            if let v = value(axis) { parts.append("\(axis.short)=\(v)") }
        }
        return parts.joined(separator: " ")
    }
}

extension WorkloadDefinition {
    /// The workload of a validated point.
    static func makeWorkload(_ point: SweepPoint) -> Workload {
        workload(configuration(point, options: point.transportOptions))
    }
}

extension SweepPoint {
    /// Whether a parameter means anything for this point's workload and transport.
    public func applies(_ axis: SweepAxis) -> Bool {
        switch axis {
        case .parameter(let p): return definition.parameters.contains(p)
        case .engine: return transport == .engine
        case .writeSize, .readSize, .total: return definition.usesStreamSizes
        case .kernelPipeSize: return Self.kernelPipeTransports.contains(transport)
        case .readerCPU: return transport != .memcpy
        default: return true
        }
    }

    /// Resets parameters that do not apply (so equal measurements get equal points).
    public func normalized() -> SweepPoint {
        var p = self
        let d = SweepPoint()
        if transport != .engine { p.engine = [:] }
        if !applies(.writeSize) { p.writeSize = d.writeSize; p.readSize = nil; p.totalBytes = nil }
        if !applies(.readerCPU) { p.readerCPU = nil }
        if !applies(.kernelPipeSize) { p.kernelPipeSize = nil }
        for name in p.own.keys where !(definition.parameters.contains { $0.name == name }) { p.own[name] = nil }
        definition.normalize(&p)
        p.label = ""
        return p
    }
}
