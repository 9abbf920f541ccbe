import CNuma
import CPipeSys
import PipeEngine
#if canImport(Glibc)
import Glibc
#endif

/// Where a workload's two sides run and where their memory lives.
///
/// "Writer" is the sending side (the stream writer, the pingpong client); "reader" the receiving
/// side (the stream reader, the pingpong server). A CPU pins the thread to that one CPU; a node
/// (without a CPU) lets it run on any CPU of that node (`numa_run_on_node`); both may be given if
/// the CPU is on the node. A memory node binds that side's user buffers to the node
/// (`mmap` + `mbind(MPOL_BIND)` before first touch). `arenaNode` binds the engine's KVA arena
/// (its pipe buffers); transports without an arena ignore it. Nil everywhere: the scheduler
/// and the kernel's first-touch policy decide, and the result still records where things went.
public struct Placement: Codable, Sendable, Hashable {
    public var writerCPU: Int?
    public var readerCPU: Int?
    public var writerNode: Int?
    public var readerNode: Int?
    public var writerMemoryNode: Int?
    public var readerMemoryNode: Int?
    public var arenaNode: Int?
    /// The preset this came from, if any (recorded with results).
    public var preset: PlacementPreset?

    public init(
        writerCPU: Int? = nil, readerCPU: Int? = nil, writerNode: Int? = nil, readerNode: Int? = nil,
        writerMemoryNode: Int? = nil, readerMemoryNode: Int? = nil, arenaNode: Int? = nil,
        preset: PlacementPreset? = nil
    ) {
        self.writerCPU = writerCPU
        self.readerCPU = readerCPU
        self.writerNode = writerNode
        self.readerNode = readerNode
        self.writerMemoryNode = writerMemoryNode
        self.readerMemoryNode = readerMemoryNode
        self.arenaNode = arenaNode
        self.preset = preset
    }

    /// One memory node for every buffer (the CLI's `--memory-node`): both sides' user buffers
    /// and the engine's arena.
    public var memoryNode: Int? {
        get { writerMemoryNode == readerMemoryNode && readerMemoryNode == arenaNode ? writerMemoryNode : nil }
        set { writerMemoryNode = newValue; readerMemoryNode = newValue; arenaNode = newValue }
    }

    /// True when nothing is placed.
    public var isUnplaced: Bool {
        writerCPU == nil && readerCPU == nil && writerNode == nil && readerNode == nil
            && writerMemoryNode == nil && readerMemoryNode == nil && arenaNode == nil
    }

    /// Whether any node (thread or memory) is asked for.
    public var usesNodes: Bool {
        writerNode != nil || readerNode != nil || writerMemoryNode != nil || readerMemoryNode != nil || arenaNode != nil
    }

    /// Checks the placement against the machine; the error names what exists. Called before
    /// any thread starts, so that libnuma is never asked about a node that does not exist (it
    /// would print a warning and fail with ERANGE).
    public func validate(against topology: Topology = .current()) throws {
        func checkCPU(_ cpu: Int?, _ role: String) throws {
            guard let cpu else { return }
            guard topology.usableCPUs.contains(cpu) else {
                throw HarnessError.invalidArgument(
                    "\(role) CPU \(cpu) does not exist or is not available to this process; usable CPUs: \(formatCPUList(topology.usableCPUs))")
            }
        }
        func checkNode(_ node: Int?, _ role: String, needsCPUs: Bool) throws {
            guard let node else { return }
            guard topology.numaAvailable else {
                throw HarnessError.unsupported(
                    "\(Topology.noNUMAMessage): cannot place the \(role) on node \(node); use CPU placement (same-core, cross-core) instead")
            }
            guard topology.node(node) != nil else {
                throw HarnessError.invalidArgument(
                    "NUMA node \(node) (\(role)) does not exist; this machine has \(topology.nodeListText)")
            }
            if needsCPUs && topology.usableCPUs(onNode: node).isEmpty {
                throw HarnessError.invalidArgument(
                    "NUMA node \(node) has no CPUs this process may use, so the \(role) cannot run there (usable CPUs: \(formatCPUList(topology.usableCPUs)))")
            }
        }
        func checkCPUOnNode(_ cpu: Int?, _ node: Int?, _ role: String) throws {
            guard let cpu, let node, let actual = topology.nodeOf(cpu: cpu), actual != node else { return }
            throw HarnessError.invalidArgument("\(role) CPU \(cpu) is on node \(actual), not on the \(role) node \(node)")
        }
        try checkCPU(writerCPU, "writer")
        try checkCPU(readerCPU, "reader")
        try checkNode(writerNode, "writer thread", needsCPUs: true)
        try checkNode(readerNode, "reader thread", needsCPUs: true)
        try checkNode(writerMemoryNode, "writer's buffer", needsCPUs: false)
        try checkNode(readerMemoryNode, "reader's buffer", needsCPUs: false)
        try checkNode(arenaNode, "engine's arena", needsCPUs: false)
        try checkCPUOnNode(writerCPU, writerNode, "writer")
        try checkCPUOnNode(readerCPU, readerNode, "reader")
    }

    /// A preset for this machine. `node` chooses the node of same-core, cross-core and
    /// same-node (default: the node of the lowest usable CPU); `otherNode` the reader's node of
    /// cross-node (default: the node with usable CPUs farthest from the first, by numa_distance;
    /// ties go to the lowest id, so on two nodes it is the other one). Refused, with a message naming
    /// what exists, when the machine cannot provide it.
    public static func preset(
        _ preset: PlacementPreset, topology: Topology = .current(), node: Int? = nil, otherNode: Int? = nil
    ) throws -> Placement {
        let cpuNodes = topology.nodes.filter { !topology.usableCPUs(onNode: $0.id).isEmpty }.map(\.id)
        func requireNUMA() throws {
            guard topology.numaAvailable else {
                throw HarnessError.unsupported(
                    "\(Topology.noNUMAMessage): the \(preset.rawValue) preset places threads on nodes; same-core and cross-core work without NUMA")
            }
        }
        // The node a single-node preset uses, and the CPUs it may pick from.
        func homeNode() throws -> (node: Int?, cpus: [Int]) {
            if let node {
                try requireNUMA()
                guard topology.node(node) != nil else {
                    throw HarnessError.invalidArgument("NUMA node \(node) does not exist; this machine has \(topology.nodeListText)")
                }
                let cpus = topology.usableCPUs(onNode: node)
                guard !cpus.isEmpty else {
                    throw HarnessError.invalidArgument("NUMA node \(node) has no CPUs this process may use")
                }
                return (node, cpus)
            }
            guard topology.numaAvailable, let first = topology.usableCPUs.first, let n = topology.nodeOf(cpu: first) else {
                return (nil, topology.usableCPUs)
            }
            return (n, topology.usableCPUs(onNode: n))
        }
        switch preset {
        case .sameCore:
            let home = try homeNode()
            guard let cpu = home.cpus.first else { throw HarnessError.unsupported("no usable CPU") }
            return Placement(writerCPU: cpu, readerCPU: cpu, writerNode: home.node, readerNode: home.node,
                             writerMemoryNode: home.node, readerMemoryNode: home.node, arenaNode: home.node, preset: preset)
        case .crossCore:
            let home = try homeNode()
            guard let a = home.cpus.first else { throw HarnessError.unsupported("no usable CPU") }
            // Prefer a CPU on another physical core (not an SMT sibling of the first).
            let siblings = topology.cpus.first { $0.id == a }?.siblings ?? [a]
            let others = home.cpus.filter { $0 != a }
            guard let b = others.first(where: { !siblings.contains($0) }) ?? others.first else {
                let where_ = home.node.map { "node \($0) has" } ?? "this process has"
                throw HarnessError.unsupported("cross-core placement needs two CPUs on one node; \(where_) only CPU \(formatCPUList(home.cpus))")
            }
            return Placement(writerCPU: a, readerCPU: b, writerNode: home.node, readerNode: home.node,
                             writerMemoryNode: home.node, readerMemoryNode: home.node, arenaNode: home.node, preset: preset)
        case .sameNode:
            try requireNUMA()
            let home = try homeNode()
            return Placement(writerNode: home.node, readerNode: home.node, writerMemoryNode: home.node,
                             readerMemoryNode: home.node, arenaNode: home.node, preset: preset)
        case .crossNode:
            try requireNUMA()
            guard cpuNodes.count >= 2 || (node != nil && otherNode != nil && node != otherNode) else {
                throw HarnessError.unsupported(
                    "cross-node placement needs two NUMA nodes with CPUs; this machine has \(topology.nodeListText)")
            }
            let a = node ?? cpuNodes[0]
            let b = otherNode ?? topology.farthest(from: a, among: cpuNodes) ?? a
            guard a != b else {
                throw HarnessError.invalidArgument("cross-node placement needs two different nodes, got node \(a) twice")
            }
            let placement = Placement(writerNode: a, readerNode: b, writerMemoryNode: a, readerMemoryNode: b,
                                      arenaNode: a, preset: preset)
            try placement.validate(against: topology)
            return placement
        }
    }
}

/// The placement presets: `same-core`, `cross-core`, `same-node`, `cross-node`.
public enum PlacementPreset: String, Codable, Sendable, CaseIterable, Hashable {
    /// Writer and reader pinned to one CPU; all memory on its node.
    case sameCore = "same-core"
    /// Writer and reader pinned to two CPUs of one node (different physical cores when the
    /// node has them); all memory on that node.
    case crossCore = "cross-core"
    /// Writer and reader free to run on any CPU of one node; all memory there.
    case sameNode = "same-node"
    /// Writer on one node, reader on another, each side's buffer on its own node, the engine's
    /// arena on the writer's node.
    case crossNode = "cross-node"
}

// MARK: - applying a placement

/// Places the calling thread: pinned to `cpu` if given, else restricted to `node`'s CPUs if
/// given, else left alone. Validate the placement first (`Placement.validate`).
func applyThreadPlacement(cpu: Int?, node: Int?) throws {
    if let cpu {
        try pinCurrentThread(cpu)
        return
    }
    guard let node else { return }
    errno = 0
    if numa_run_on_node(Int32(node)) != 0 {
        let e = errno == 0 ? EINVAL : errno
        throw HarnessError.system(call: "numa_run_on_node", errno: e, context: "node \(node)")
    }
}

/// Binds `[base, base + length)` (page-aligned) to `node` with `mbind(MPOL_BIND)`, moving any
/// pages already present (`MPOL_MF_MOVE`).
func bindMemory(_ base: UnsafeMutableRawPointer, _ length: Int, toNode node: Int, what: String) throws {
    let bitsPerWord = UInt.bitWidth
    var mask = [UInt](repeating: 0, count: node / bitsPerWord + 1)
    mask[node / bitsPerWord] |= 1 << UInt(node % bitsPerWord)
    let maxnode = UInt(mask.count * bitsPerWord + 1)   // the kernel reads maxnode - 1 bits
    let r = mask.withUnsafeBufferPointer {
        mbind(base, UInt(length), MPOL_BIND, $0.baseAddress, maxnode, UInt32(MPOL_MF_MOVE | MPOL_MF_STRICT))
    }
    if r != 0 { throw HarnessError.system(call: "mbind", errno: errno, context: "\(what) to node \(node)") }
}

// MARK: - where memory really is

/// Where the pages of one buffer were when checked (`move_pages(2)` in query mode).
public struct MemoryLocation: Codable, Sendable, Equatable {
    public struct NodePages: Codable, Sendable, Equatable {
        public var node: Int
        public var pages: Int
    }

    /// "writer buffer", "reader buffer", "engine arena".
    public var what: String
    public var requestedNode: Int?
    public var bytes: Int
    public var pages: Int
    /// Present pages by node, lowest node first.
    public var pagesByNode: [NodePages]
    /// Pages not present (never touched, or given back): move_pages status -ENOENT.
    public var pagesNotPresent: Int
    /// Pages with another error status (-EFAULT for a zero page or an inaccessible range, …).
    public var pagesOtherStatus: Int
    /// Set when the query itself failed (no NUMA in the kernel: ENOSYS); the counts are then 0.
    public var error: String?

    public var presentPages: Int { pagesByNode.reduce(0) { $0 + $1.pages } }
    /// The node holding most present pages.
    public var dominantNode: Int? { pagesByNode.max { $0.pages < $1.pages }?.node }
    /// Whether every present page is on the requested node (nil when none was requested or
    /// nothing is present).
    public var onRequestedNode: Bool? {
        guard let requestedNode, presentPages > 0 else { return nil }
        return pagesByNode.allSatisfy { $0.node == requestedNode }
    }

    /// Present pages on a node other than the requested one (nil when none was requested).
    public var pagesOffRequestedNode: Int? {
        guard let requestedNode else { return nil }
        return pagesByNode.reduce(0) { $0 + ($1.node == requestedNode ? 0 : $1.pages) }
    }

    /// Queries the pages of `[base, base + bytes)`. The range is widened to whole pages.
    public static func query(_ base: UnsafeRawPointer, bytes: Int, what: String, requestedNode: Int? = nil) -> MemoryLocation {
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = Int(bitPattern: base) & ~(pageSize - 1)
        let end = Int(bitPattern: base) + max(bytes, 1)
        let count = (end - start + pageSize - 1) / pageSize
        var result = MemoryLocation(what: what, requestedNode: requestedNode, bytes: bytes, pages: count,
                                    pagesByNode: [], pagesNotPresent: 0, pagesOtherStatus: 0, error: nil)
        var byNode: [Int: Int] = [:]
        // In chunks, so that a large arena does not need one huge array.
        let chunk = 4096
        var pages = [UnsafeMutableRawPointer?](repeating: nil, count: chunk)
        var status = [Int32](repeating: 0, count: chunk)
        var done = 0
        while done < count {
            let n = min(chunk, count - done)
            for i in 0..<n { pages[i] = UnsafeMutableRawPointer(bitPattern: start + (done + i) * pageSize) }
            let r = pages.withUnsafeMutableBufferPointer { p in
                status.withUnsafeMutableBufferPointer { s in
                    move_pages(0, UInt(n), p.baseAddress, nil, s.baseAddress, 0)
                }
            }
            if r < 0 {
                result.error = "move_pages failed: \(HarnessError.errnoText(errno))"
                return result
            }
            for i in 0..<n {
                let s = Int(status[i])
                if s >= 0 { byNode[s, default: 0] += 1 } else if s == -Int(ENOENT) { result.pagesNotPresent += 1 } else { result.pagesOtherStatus += 1 }
            }
            done += n
        }
        result.pagesByNode = byNode.keys.sorted().map { NodePages(node: $0, pages: byNode[$0]!) }
        return result
    }

    /// Sums two queries of the same kind of memory (the two arenas of a pingpong).
    func merged(with other: MemoryLocation) -> MemoryLocation {
        var byNode: [Int: Int] = [:]
        for p in pagesByNode + other.pagesByNode { byNode[p.node, default: 0] += p.pages }
        return MemoryLocation(
            what: what, requestedNode: requestedNode, bytes: bytes + other.bytes, pages: pages + other.pages,
            pagesByNode: byNode.keys.sorted().map { NodePages(node: $0, pages: byNode[$0]!) },
            pagesNotPresent: pagesNotPresent + other.pagesNotPresent,
            pagesOtherStatus: pagesOtherStatus + other.pagesOtherStatus, error: error ?? other.error)
    }
}
