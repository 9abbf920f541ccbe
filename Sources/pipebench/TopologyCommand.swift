import ArgumentParser
import Foundation
import PipeEngine
import PipeHarness
import PipeResults

struct TopologyCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Show the machine: CPUs, NUMA nodes, distances, free memory, and what results record.",
        discussion: """
        Everything comes from the harness's EnvironmentInfo (libnuma, /proc, /sys), the same \
        record every result carries. --probe also measures the core-to-core round trip \
        (one cache line bounced between two spinning threads) for every pair of CPUs.

        Examples:
          pipebench topology
          pipebench topology --probe
          pipebench topology --json
        """
    )

    @Flag(name: .customLong("json"), help: "Print EnvironmentInfo as JSON.")
    var json = false
    @Flag(name: .customLong("probe"), help: "Measure the core-to-core round trip between every pair of CPUs.")
    var probe = false

    func execute() throws {
        let env = EnvironmentInfo.capture()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(env), as: UTF8.self))
            return
        }
        print("Host      \(env.hostname)")
        print("Kernel    \(env.kernel.sysname) \(env.kernel.release) \(env.kernel.machine)")
        print("CPU       \(env.cpuModel ?? "unknown")\(env.hypervisor ? " (virtual machine: vCPUs may move)" : "")")
        print("CPUs      \(env.onlineCPUs) online, \(env.configuredCPUs) configured, \(env.usableCPUs) usable by this process")
        print("THP       \(env.transparentHugePages ?? "unknown")    clocksource \(env.clocksource ?? "unknown")    pipe-max-size \(env.pipeMaxSize.map(SizeSpec.format) ?? "unknown")")
        print("Governor  \(env.cpuGovernor ?? "none exposed")")
        print("Build     Swift \(env.swiftCompiler) \(env.buildConfiguration), pipebench \(env.projectVersion), commit \(env.gitCommit)\(env.gitDirty == true ? " (dirty)" : "")")
        if !env.numa.available {
            print("\nNUMA      not available on this kernel: the harness runs without placement; node flags are refused")
        } else {
            print("\nNUMA nodes (max node \(env.numa.maxNode ?? 0))")
            var rows = [["node", "cpus", "memory", "free"] + env.numa.nodes.map { "d(\($0.id))" }]
            for n in env.numa.nodes {
                rows.append(["\(n.id)", formatCPUList(n.cpus), n.totalBytes.map { Self.gib($0) } ?? "?", n.freeBytes.map { Self.gib($0) } ?? "?"] + n.distances.map(String.init))
            }
            print(TextTable.render(rows))
            print("  (d(n): numa_distance to node n, 10 = local)")
        }
        if probe {
            // The CPUs this process may run on (pinning to any other fails).
            let cpus = Topology.usableCPUList()
            print("\nCore-to-core round trip, ns (median of batch means, \(CoreProbe.defaultRoundTrips) round trips)")
            var rows = [["cpu"] + cpus.map(String.init)]
            for a in cpus {
                var row = [String(a)]
                for b in cpus {
                    if a == b { row.append("-"); continue }
                    let r = try CoreProbe.measure(cpuA: a, cpuB: b, roundTrips: CoreProbe.defaultRoundTrips)
                    row.append(String(format: "%.0f", r.medianNs))
                }
                rows.append(row)
            }
            print(TextTable.render(rows))
        }
    }

    static func gib(_ b: Int64) -> String { String(format: "%.1f GiB", Double(b) / Double(1 << 30)) }
}
