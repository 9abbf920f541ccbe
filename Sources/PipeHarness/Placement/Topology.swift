import CNuma
import Foundation
import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// The machine as placement sees it: NUMA nodes (CPUs, memory, distances) from libnuma, the
/// CPUs this process may run on, and each CPU's core and package from sysfs.
///
/// On a kernel without NUMA support (`numa_available() < 0`) `numaAvailable` is false, `nodes`
/// is empty and `message` says so; CPU placement still works, node placement is refused.
public struct Topology: Codable, Sendable {
    public typealias Node = EnvironmentInfo.NUMANode

    /// One CPU: its node (nil without NUMA), physical core and package (nil where sysfs does
    /// not say), and its SMT siblings (itself included).
    public struct CPU: Codable, Sendable, Equatable {
        public var id: Int
        public var node: Int?
        public var core: Int?
        public var package: Int?
        public var siblings: [Int]
    }

    public static let noNUMAMessage = "no NUMA support in this kernel"

    public var numaAvailable: Bool
    /// `noNUMAMessage` when NUMA is not available; nil otherwise.
    public var message: String?
    /// Nodes that exist, by id (ids can have holes). `distances[i]` is to `nodes[i]`.
    public var nodes: [Node]
    /// CPUs this process may run on (the main thread's affinity mask), lowest first.
    public var usableCPUs: [Int]
    /// sysconf(_SC_NPROCESSORS_ONLN).
    public var onlineCPUs: Int
    /// The usable CPUs, described.
    public var cpus: [CPU]

    /// Reads the running machine. Cheap (libnuma and a few sysfs files): call it per run.
    public static func current() -> Topology {
        let numa = EnvironmentInfo.captureNUMA()
        let usable = usableCPUList()
        var cpus: [CPU] = []
        for id in usable {
            let base = "/sys/devices/system/cpu/cpu\(id)/topology/"
            let node = numa.available ? numa.nodes.first(where: { $0.cpus.contains(id) })?.id : nil
            cpus.append(CPU(
                id: id, node: node,
                core: readTextFile(base + "core_id").flatMap { Int($0.trimmed) },
                package: readTextFile(base + "physical_package_id").flatMap { Int($0.trimmed) },
                siblings: readTextFile(base + "thread_siblings_list").flatMap { try? parseCPUList($0) } ?? [id]))
        }
        return Topology(
            numaAvailable: numa.available, message: numa.available ? nil : noNUMAMessage,
            nodes: numa.nodes, usableCPUs: usable,
            onlineCPUs: sysconf(Int32(_SC_NPROCESSORS_ONLN)), cpus: cpus)
    }

    /// The ids of the nodes that exist.
    public var nodeIDs: [Int] { nodes.map(\.id) }

    public func node(_ id: Int) -> Node? { nodes.first { $0.id == id } }

    /// The node a CPU belongs to (nil without NUMA or for an unknown CPU).
    public func nodeOf(cpu: Int) -> Int? {
        nodes.first { $0.cpus.contains(cpu) }?.id
    }

    /// The usable CPUs of a node.
    /// numa_distance from node `a` to node `b` (10 = local), if both exist.
    public func distance(_ a: Int, _ b: Int) -> Int? {
        guard let from = node(a), let i = nodes.firstIndex(where: { $0.id == b }), i < from.distances.count else { return nil }
        return from.distances[i]
    }

    /// Of `candidates`, the node farthest from `home` (ties and unknown distances: the lowest id).
    public func farthest(from home: Int, among candidates: [Int]) -> Int? {
        candidates.filter { $0 != home }.min { a, b in
            let da = distance(home, a) ?? 0, db = distance(home, b) ?? 0
            return da != db ? da > db : a < b
        }
    }

    public func usableCPUs(onNode id: Int) -> [Int] {
        guard let n = node(id) else { return [] }
        return n.cpus.filter(usableCPUs.contains)
    }

    /// "node 0" / "nodes 0, 1" — what refusals name.
    public var nodeListText: String {
        switch nodes.count {
        case 0: return "no nodes (\(message ?? Topology.noNUMAMessage))"
        case 1: return "node \(nodes[0].id) only"
        default: return "nodes " + nodeIDs.map(String.init).joined(separator: ", ")
        }
    }

    /// A report for people: nodes, CPUs, memory, distances.
    public var report: String {
        var lines: [String] = []
        lines.append("CPUs: \(onlineCPUs) online; this process may use \(formatCPUList(usableCPUs))")
        guard numaAvailable else {
            lines.append("NUMA: \(message ?? Topology.noNUMAMessage); CPU placement only")
            return lines.joined(separator: "\n")
        }
        lines.append("NUMA: \(nodes.count) node\(nodes.count == 1 ? "" : "s")")
        for n in nodes {
            let mem: String
            if let total = n.totalBytes {
                mem = "\(formatBytes(total)) total, \(n.freeBytes.map(formatBytes) ?? "?") free"
            } else {
                mem = "memory size unknown"
            }
            lines.append("  node \(n.id): cpus \(n.cpus.isEmpty ? "none" : formatCPUList(n.cpus)); \(mem)")
        }
        lines.append("distances:")
        lines.append("  node " + nodeIDs.map { pad(String($0), 5) }.joined())
        for n in nodes {
            lines.append("  " + pad(String(n.id), 4) + " " + n.distances.map { pad(String($0), 5) }.joined())
        }
        let smt = cpus.filter { $0.siblings.count > 1 }
        if !smt.isEmpty {
            lines.append("SMT siblings: " + Set(smt.map { formatCPUList($0.siblings) }).sorted().joined(separator: "; "))
        }
        return lines.joined(separator: "\n")
    }

    /// The CPUs in this process's affinity mask (of the main thread, so that a thread that
    /// has pinned itself still sees the whole set).
    public static func usableCPUList() -> [Int] {
        var capacity = 1024
        while true {
            var buffer = [Int32](repeating: -1, count: capacity)
            let n = buffer.withUnsafeMutableBufferPointer { pb_affinity_cpus(getpid(), $0.baseAddress, Int32(capacity)) }
            if n < 0 { return Array(0..<max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
            if Int(n) <= capacity { return buffer.prefix(Int(n)).map(Int.init) }
            capacity = Int(n)
        }
    }

    private func pad(_ s: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - s.count)) + s
    }
}

/// Parses a Linux CPU list ("0-3,8,10-11"); throws on malformed text.
public func parseCPUList(_ text: String) throws -> [Int] {
    var result: [Int] = []
    for part in text.trimmed.split(separator: ",") {
        let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 1 || bounds.count == 2,
              let lo = Int(bounds[0].trimmingCharacters(in: .whitespaces)), lo >= 0,
              let hi = bounds.count == 2 ? Int(bounds[1].trimmingCharacters(in: .whitespaces)) : lo, hi >= lo
        else { throw HarnessError.invalidArgument("malformed CPU list \"\(text.trimmed)\": expected e.g. 0-3,8") }
        result.append(contentsOf: lo...hi)
    }
    return result
}

/// "0-3,8" for [0, 1, 2, 3, 8].
public func formatCPUList(_ cpus: [Int]) -> String {
    let sorted = Array(Set(cpus)).sorted()
    var parts: [String] = []
    var i = 0
    while i < sorted.count {
        var j = i
        while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
        parts.append(i == j ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
        i = j + 1
    }
    return parts.isEmpty ? "none" : parts.joined(separator: ",")
}

func formatBytes(_ bytes: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : "\(Double(Int((value * 10).rounded())) / 10) \(units[unit])"
}
