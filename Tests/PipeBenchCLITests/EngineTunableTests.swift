import Foundation
import PipeEngine
import Testing
@testable import PipeHarness
@testable import PipeResults

/// Every engine tunable is declared once (`EngineTunable.all`); these check that each one
/// reaches every place that lists tunables: the engine's sysctls, `pipebench sysctl`, the
/// command-line help, the sweep axes, the results schema, and a real run's CSV row.
@Suite(.serialized) struct EngineTunableTests {
    @Test func everyTunableIsASysctlASweepAxisAndAColumn() {
        let sysctls = Dictionary(uniqueKeysWithValues: PipeSystem.sysctls.map { ($0.name, $0) })
        #expect(EngineTunable.all.count >= 9)
        for t in EngineTunable.all {
            #expect(sysctls[t.sysctl]?.defaultValue == t.defaultValue, "\(t.sysctl)")
            #expect(SweepAxis(rawValue: t.flag) == .engine(t), "\(t.flag)")
            #expect(SweepAxis.allCases.contains(.engine(t)))
            #expect(ResultsSchema.column(t.column)?.group == .parameter, "\(t.column)")
            #expect(ResultsSchema.parameterColumns.contains(t.column))
        }
        // Names are unique across the table.
        for key in [\EngineTunable.flag, \.sysctl, \.column, \.label] as [KeyPath<EngineTunable, String>] {
            #expect(Set(EngineTunable.all.map { $0[keyPath: key] }).count == EngineTunable.all.count)
        }
    }

    /// Each value reads back as the sysctl of a kernel made with it.
    @Test func aConfigurationsValueIsWhatTheKernelHasInForce() throws {
        var config = PipeConfiguration()
        for t in EngineTunable.all { t.set(Self.otherValue(t), in: &config) }
        try config.validate()
        let sys = try PipeSystem(config, log: { _ in })
        for t in EngineTunable.all {
            var expected = Self.otherValue(t)
            #if !arch(x86_64)
            if t.flag == "copy" { expected = 0 }   // streaming stores are x86-64's: cached in force
            #endif
            #expect(try sys.sysctl(t.sysctl) == expected, "\(t.sysctl)")
        }
    }

    @Test func everyTunableIsInTheCommandLine() throws {
        let sysctl = try pipebench(["sysctl", "--json"])
        #expect(sysctl.status == 0)
        for command in ["run", "sweep", "compare"] {
            let help = try pipebench([command, "--help"])
            #expect(help.status == 0)
            for t in EngineTunable.all {
                #expect(help.stdout.contains("--\(t.flag) <\(t.valueName)>"), "\(command) --help lacks --\(t.flag)")
            }
        }
        for t in EngineTunable.all {
            #expect(sysctl.stdout.contains("\"name\": \"\(t.sysctl)\"") && sysctl.stdout.contains("\"flag\": \"--\(t.flag)\""),
                    "pipebench sysctl: \(t.sysctl)")
        }
    }

    /// Every tunable given as a flag arrives in the row of a real run, in its column.
    @Test func everyTunableGivenAsAFlagIsRecorded() throws {
        let dir = makeTempDir()
        var args = ["run", "--transport", "engine", "--write-size", "4K", "--total", "64K",
                    "--repetitions", "1", "--warmup", "0", "--progress", "none", "--quiet", "--csv", "out.csv"]
        for t in EngineTunable.all { args += ["--\(t.flag)", Self.otherText(t)] }
        let run = try pipebench(args, in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let table = try ResultsTable.read(path: dir + "/out.csv")
        try #require(table.rows.count == 1)
        for t in EngineTunable.all {
            #expect(table.value(0, t.column) == ResultsSchema.engineCell(t, Self.otherValue(t)), "\(t.column)")
        }
    }

    /// A valid value other than the default: sizes doubled (which keeps their order), the next
    /// choice, the switch flipped, half the spin.
    static func otherValue(_ t: EngineTunable) -> Int {
        switch t.kind {
        case .size: return t.defaultValue * 2
        case .choice(let names): return (t.defaultValue + 1) % names.count
        case .onOff: return t.defaultValue == 0 ? 1 : 0
        case .spin: return t.defaultValue / 2
        }
    }

    static func otherText(_ t: EngineTunable) -> String {
        let v = otherValue(t)
        switch t.kind {
        case .size: return String(v)
        case .choice(let names): return names[v]
        case .onOff: return v != 0 ? "on" : "off"
        case .spin: return "spin:\(v)"
        }
    }
}
