import ArgumentParser
import Foundation
import PipeEngine
import PipeHarness
import PipeResults

struct SysctlCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "sysctl",
        abstract: "List the engine's tunables and counters with their defaults and the flags that set them.",
        discussion: """
        The list is PipeSystem.sysctls: FreeBSD's kern.ipc.* names and the engine's own \
        engine.* ones. Access: RW settable at run time, RDTUN fixed when an instance is \
        created, RD a counter. Defaults are those of a new instance on this machine \
        (maxpipekva is autotuned to physical memory / 64).

        Examples:
          pipebench sysctl
          pipebench sysctl --json
        """
    )

    @Flag(name: .customLong("json"), help: "Print as JSON.")
    var json = false

    /// The flag that sets each tunable's sysctl.
    static let flags: [String: String] = Dictionary(uniqueKeysWithValues: EngineTunable.all.map { ($0.sysctl, "--" + $0.flag) })

    func execute() throws {
        let list = PipeSystem.sysctls
        if json {
            var items: [String] = []
            for s in list {
                let d = s.defaultValue.map(String.init) ?? "null"
                let f = Self.flags[s.name].map { "\"\($0)\"" } ?? "null"
                items.append("  {\"name\": \"\(s.name)\", \"access\": \"\(s.access.rawValue)\", \"default\": \(d), \"flag\": \(f), \"description\": \"\(s.description.replacingOccurrences(of: "\"", with: "\\\""))\"}")
            }
            print("[\n" + items.joined(separator: ",\n") + "\n]")
            return
        }
        var rows = [["name", "access", "default", "flag", "description"]]
        for s in list {
            var d = s.defaultValue.map { String($0) } ?? "(counter)"
            if let v = s.defaultValue, v >= 4096, v % 1024 == 0 { d += " (\(SizeSpec.format(v)))" }
            rows.append([s.name, s.access.rawValue, d, Self.flags[s.name] ?? "", s.description])
        }
        print(TextTable.render(rows, leftAligned: [0, 1, 3, 4]))
    }
}
