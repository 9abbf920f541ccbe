import ArgumentParser
import Foundation
import PipeResults

struct ExplainCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show what the pipe did in each configuration of a result: the engine's events and each side's scheduling.",
        discussion: """
        For every configuration of the file (or only those whose label is, or contains, \
        --label), one line of the rates that decide it, then every count by repetition \
        with its median and its median per MiB moved (stream, pairs, fanin, kva-pressure) \
        or per round trip (pingpong): the engine's events (`ev_*`: sleeps by wait site, of \
        them how many parked, contended locks, direct chunks, clones, resizes, arena calls) \
        and, for every transport, each side's voluntary and involuntary context switches \
        and user and system time (`pipebench columns` documents each). Counts come from \
        each side's measured window. Files written before these columns existed \
        (schemas 1 to 3) have nothing to explain.

        Examples:
          pipebench explain results/run.csv
          pipebench explain results/run.csv --label engine-direct
        """
    )

    @Argument(help: ArgumentHelp("A result file (CSV or JSON).", valueName: "file"))
    var input: String
    @Option(name: .customLong("label"), help: ArgumentHelp("Only the configuration with this label (or, if none has it exactly, those whose label contains it).", valueName: "label"))
    var label: String?

    func execute() throws {
        let table = try ResultsTable.read(path: input)
        var groups = ResultsSummary.groups(table)
        if let label {
            let exact = groups.filter { $0.label == label }
            groups = exact.isEmpty ? groups.filter { $0.label.contains(label) } : exact
            guard !groups.isEmpty else {
                let labels = Set(ResultsSummary.groups(table).map(\.label)).sorted()
                throw CLIError.usage("--label '\(label)': no configuration of \(input) has it; its labels: \(labels.joined(separator: ", "))")
            }
        }
        var out: [String] = []
        // A file of several runs (concatenated shards or runs) has a configuration once per run.
        let runs = Set(groups.map(\.runID)).count
        for g in groups {
            if runs > 1 { out.append("run \(g.runID):") }
            guard g.rows.contains(where: { !table.value($0, "writer_vcsw").isEmpty }) else {
                throw CLIError.data("\(input): '\(g.label)' has no event or scheduling columns (written before they existed): nothing to explain")
            }
            guard let why = ResultsExplain.whyLine(g) else {
                throw CLIError.data("\(input): '\(g.label)' records no bytes moved or round trips (bytes_B, rtt_count): nothing to explain per unit")
            }
            out.append(why)
            out.append(ResultsExplain.table(g))
            out.append("")
        }
        print(out.joined(separator: "\n"), terminator: "")
    }
}
