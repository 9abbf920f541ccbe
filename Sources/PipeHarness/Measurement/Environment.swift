import CNuma
import CPipeSys
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// This project's version, recorded with every result.
public let pipeBenchVersion = "0.1.0"

/// The machine and build a result came from, captured at run time, so that numbers taken on
/// different days, kernels or hosts are never compared unknowingly. Fields the machine does not
/// expose are nil rather than guessed.
public struct EnvironmentInfo: Codable, Sendable {
    public struct Kernel: Codable, Sendable {
        public var sysname: String
        public var release: String
        public var version: String
        public var machine: String
    }

    public struct NUMANode: Codable, Sendable {
        public var id: Int
        public var cpus: [Int]
        /// numa_node_size64: total and free memory of the node, bytes.
        public var totalBytes: Int64?
        public var freeBytes: Int64?
        /// numa_distance from this node to node 0, 1, … (10 = local), in the order of `nodes`.
        public var distances: [Int]
    }

    public struct NUMA: Codable, Sendable {
        /// numa_available() ≥ 0.
        public var available: Bool
        public var maxNode: Int?
        public var nodes: [NUMANode]
    }

    public var kernel: Kernel
    /// "model name" from /proc/cpuinfo.
    public var cpuModel: String?
    /// The "hypervisor" CPU flag: running in a VM, where vCPUs can move under us.
    public var hypervisor: Bool
    /// The hypervisor by name, from its CPUID signature ("KVM", "QEMU TCG", "Hyper-V", …; the
    /// signature itself when unknown); nil on bare metal.
    public var virtualization: String?
    /// The CPU is emulated in software (QEMU's TCG): the run checks behaviour and placement,
    /// and its timings say nothing about any real machine.
    public var emulated: Bool
    /// sysconf(_SC_NPROCESSORS_ONLN) and _CONF.
    public var onlineCPUs: Int
    public var configuredCPUs: Int
    /// CPUs this process may run on (its affinity mask).
    public var usableCPUs: Int
    public var numa: NUMA
    /// The selected mode of /sys/kernel/mm/transparent_hugepage/enabled ("madvise", …).
    public var transparentHugePages: String?
    public var clocksource: String?
    /// /proc/sys/fs/pipe-max-size: the largest F_SETPIPE_SZ an unprivileged process may ask.
    public var pipeMaxSize: Int?
    /// cpufreq governor of CPU 0 (absent in most VMs).
    public var cpuGovernor: String?
    /// The Swift compiler that built this binary, as far as `#if compiler(...)` can tell
    /// (major.minor.patch; it cannot see pre-release tags or the vendor).
    public var swiftCompiler: String
    /// "debug" or "release", from the DEBUG condition SwiftPM sets for debug builds.
    public var buildConfiguration: String
    public var projectVersion: String
    /// `git rev-parse HEAD` in the working directory at run time, or "unknown" outside a
    /// checkout (or before the first commit). It names the checkout, which is the binary's
    /// source only if the binary was built from it.
    public var gitCommit: String
    /// Whether `git status --porcelain` listed changes outside `results/` (where pipebench
    /// writes its own CSVs and plots, which do not change what was built); nil when git gave
    /// no answer.
    public var gitDirty: Bool?
    public var hostname: String
    /// UTC, ISO 8601.
    public var timestamp: String

    /// Reads everything above from the running system.
    public static func capture() -> EnvironmentInfo {
        let cpuinfo = readTextFile("/proc/cpuinfo") ?? ""
        let usable = Topology.usableCPUList().count
        let commit = runCommand(["git", "rev-parse", "HEAD"])?.trimmingCharacters(in: .whitespacesAndNewlines)
        let status = commit == nil ? nil : runCommand(["git", "status", "--porcelain", "--", ":(top,exclude)results"])
        let machine = detectVirtualization(cpuModel: cpuinfoField(cpuinfo, "model name"))
        return EnvironmentInfo(
            kernel: captureKernel(),
            cpuModel: cpuinfoField(cpuinfo, "model name"),
            hypervisor: cpuinfoField(cpuinfo, "flags")?.split(separator: " ").contains("hypervisor") ?? false,
            virtualization: machine.virtualization,
            emulated: machine.emulated,
            onlineCPUs: sysconf(Int32(_SC_NPROCESSORS_ONLN)),
            configuredCPUs: sysconf(Int32(_SC_NPROCESSORS_CONF)),
            usableCPUs: usable,
            numa: captureNUMA(),
            transparentHugePages: readTextFile("/sys/kernel/mm/transparent_hugepage/enabled").flatMap(selectedMode),
            clocksource: readTextFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")?.trimmed,
            pipeMaxSize: readTextFile("/proc/sys/fs/pipe-max-size").flatMap { Int($0.trimmed) },
            cpuGovernor: readTextFile("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")?.trimmed,
            swiftCompiler: compilerVersion,
            buildConfiguration: buildConfiguration,
            projectVersion: pipeBenchVersion,
            gitCommit: (commit?.isEmpty ?? true) ? "unknown" : commit!,
            gitDirty: status.map { !$0.trimmed.isEmpty },
            hostname: captureHostname(),
            timestamp: Date().ISO8601Format())
    }

    /// Hypervisor CPUID signatures (leaf 0x40000000) and the names results give them.
    static let hypervisorNames: [String: String] = [
        "KVMKVMKVM": "KVM", "TCGTCGTCGTCG": "QEMU TCG", "Microsoft Hv": "Hyper-V",
        "VMwareVMware": "VMware", "XenVMMXenVMM": "Xen", "VBoxVBoxVBox": "VirtualBox",
        "bhyve bhyve ": "bhyve", "ACRNACRNACRN": "ACRN", " lrpepyh  vr": "Parallels", "QNXQVMBSQG": "QNX",
    ]

    /// What runs this machine, from CPUID (the hypervisor bit and signature). QEMU's TCG
    /// announces itself as "TCGTCGTCGTCG" in recent versions; older ones, and `-cpu` models
    /// without the leaf, still name the CPU "QEMU TCG CPU" in /proc/cpuinfo, which counts too.
    static func detectVirtualization(cpuModel: String?) -> (virtualization: String?, emulated: Bool) {
        var signature = [CChar](repeating: 0, count: 13)
        let present = pb_hypervisor_signature(&signature) == 1
        let text = String(decoding: signature.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let tcgModel = cpuModel?.contains("QEMU TCG CPU") ?? false
        if tcgModel && (!present || text.isEmpty) { return ("QEMU TCG", true) }
        guard present else { return (nil, false) }
        let name = hypervisorNames[text] ?? (text.isEmpty ? "unknown hypervisor" : text.trimmed)
        return (name, name == "QEMU TCG" || tcgModel)
    }

    static var compilerVersion: String {
        #if compiler(>=7.0)
        return ">= 7.0"
        #elseif compiler(>=6.4)
        return ">= 6.4, < 7.0"
        #elseif compiler(>=6.3.2)
        return ">= 6.3.2, < 6.4"
        #elseif compiler(>=6.3.1)
        return "6.3.1"
        #elseif compiler(>=6.3)
        return "6.3.0"
        #else
        return "< 6.3"
        #endif
    }

    static var buildConfiguration: String {
        #if DEBUG
        return "debug"
        #else
        return "release"
        #endif
    }

    static func captureKernel() -> Kernel {
        var u = utsname()
        guard uname(&u) == 0 else { return Kernel(sysname: "unknown", release: "unknown", version: "unknown", machine: "unknown") }
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        return Kernel(sysname: field(u.sysname), release: field(u.release), version: field(u.version), machine: field(u.machine))
    }

    static func captureNUMA() -> NUMA {
        // numa_available must be called before any other libnuma function.
        guard numa_available() >= 0 else { return NUMA(available: false, maxNode: nil, nodes: []) }
        let maxNode = Int(numa_max_node())
        let cpuCount = Int(numa_num_configured_cpus())
        // Only nodes that exist (node IDs can have holes): asking libnuma about a missing node
        // prints to stderr. (libnuma's numa_all_nodes_ptr is a mutable C global, which strict
        // concurrency will not let us read; sysfs lists the same nodes.)
        let nodeIDs = (0...maxNode).filter { access("/sys/devices/system/node/node\($0)", F_OK) == 0 }
        var nodes: [NUMANode] = []
        for id in nodeIDs {
            var cpus: [Int] = []
            if let mask = numa_allocate_cpumask() {
                if numa_node_to_cpus(Int32(id), mask) == 0 {
                    cpus = (0..<cpuCount).filter { numa_bitmask_isbitset(mask, UInt32($0)) != 0 }
                }
                numa_bitmask_free(mask)
            }
            var free: Int64 = -1
            let total = numa_node_size64(Int32(id), &free)
            nodes.append(NUMANode(
                id: id, cpus: cpus,
                totalBytes: total >= 0 ? total : nil, freeBytes: total >= 0 && free >= 0 ? free : nil,
                distances: nodeIDs.map { Int(numa_distance(Int32(id), Int32($0))) }))
        }
        return NUMA(available: true, maxNode: maxNode, nodes: nodes)
    }

    static func captureHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The value of the first "key : value" line of /proc/cpuinfo with this key.
    static func cpuinfoField(_ text: String, _ key: String) -> String? {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 && parts[0].trimmingCharacters(in: .whitespaces) == key {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// "always [madvise] never" → "madvise".
    static func selectedMode(_ text: String) -> String? {
        guard let open = text.firstIndex(of: "["), let close = text[open...].firstIndex(of: "]") else {
            return text.trimmed.isEmpty ? nil : text.trimmed
        }
        return String(text[text.index(after: open)..<close])
    }
}

/// Reads a whole (small) file with read(2) until end of file. /proc and /sys files report a
/// size of 0, so anything that trusts st_size reads nothing.
func readTextFile(_ path: String) -> String? {
    guard let fd = FD.openForReading(path) else { return nil }
    defer { try? fd.close() }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        // read(into:) retries EINTR; an error ends the file as end of file did before.
        guard let n = try? chunk.withUnsafeMutableBytes({ try fd.read(into: $0) }), n > 0 else { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Runs a command found on PATH, returning its standard output if it exits 0 (nil otherwise,
/// including when the program is missing). Standard error is discarded.
func runCommand(_ arguments: [String]) -> String? {
    guard let child = try? ChildProcess.run(arguments), child.status == 0 else { return nil }
    return child.standardOutput
}

extension String {
    var trimmed: String { trimmingCharacters(in: .whitespacesAndNewlines) }
}
