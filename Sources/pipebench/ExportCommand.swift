import ArgumentParser
import Foundation
import PipeEngine
import PipeHarness
import PipeResults

struct ExportCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Convert results between CSV, JSON and Markdown; concatenate shards.",
        discussion: """
        Reads one or more pipebench CSV or JSON files (checking their schema) and writes \
        their rows, in order, as CSV or JSON (lossless: `export a.csv --to json` then back \
        gives the same CSV) or as a Markdown summary: one line per configuration with \
        medians and 95% intervals, then the machine and commit; or as the tables a run \
        prints when it ends (`summary`: ratios to linux-pipe paired by round, placement \
        changes); or checked against a targets file (`targets`, with --targets): for each \
        target, each file's paired ratio of the two configurations it names, with its \
        interval, the goal and whether the median meets it (each file on its own: one run \
        each). The format comes from --to, else from the extension of --output; without \
        --output it goes to standard output.

        Examples:
          pipebench export results/run.csv --to markdown
          pipebench export results/run.csv --to summary
          pipebench export results/sweep-*.csv --to targets --targets results/targets.json
          pipebench export results/run.csv -o results/run.json
          pipebench export shard1.csv shard2.csv shard3.csv -o sweep.csv
          pipebench export results/run.json --to csv > run.csv
        """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case csv, json, markdown, summary, targets }

    @Argument(help: ArgumentHelp("Result files (CSV or JSON by extension).", valueName: "file"))
    var inputs: [String]
    @Option(name: .customLong("to"), help: "csv, json, markdown, summary or targets.")
    var format: Format?
    @Option(name: .customLong("targets"), help: ArgumentHelp("The targets file that --to targets checks (pipebench-targets/1 JSON; results/targets.json is the report's).", valueName: "file"))
    var targetsFile: String?
    @Option(name: [.customShort("o"), .customLong("output")], help: ArgumentHelp("Write here instead of standard output (atomically, never overwriting without --force).", valueName: "path"))
    var output: String?
    @Flag(name: .customLong("force"), help: "Overwrite --output if it exists.")
    var force = false

    func execute() throws {
        guard !inputs.isEmpty else { throw CLIError.usage("export needs at least one result file") }
        var chosen = format
        if chosen == nil, let output {
            switch (output as NSString).pathExtension.lowercased() {
            case "csv": chosen = .csv
            case "json": chosen = .json
            case "md", "markdown": chosen = .markdown
            default: throw CLIError.usage("-o \(output): cannot tell the format from the extension; add --to csv|json|markdown")
            }
        }
        let fmt = chosen ?? .markdown
        if fmt == .targets && targetsFile == nil {
            throw CLIError.usage("--to targets needs --targets FILE (for example results/targets.json)")
        }
        if fmt != .targets && targetsFile != nil {
            throw CLIError.usage("--targets FILE goes with --to targets")
        }
        if let output { try ResultsTable.checkWritable(path: output, force: force, flag: "-o") }
        let targets = try targetsFile.map { try ResultsTargets.read(path: $0) }   // before the results: fail fast
        let tables = try inputs.map { try ResultsTable.read(path: $0) }
        let table = ResultsTable.concatenate(tables)
        let text: String
        switch fmt {
        case .csv: text = table.csv()
        case .json: text = table.json()
        case .markdown: text = table.markdown()
        case .summary: text = SummaryPrinter.render(table) + "\n"
        case .targets:
            text = targets!.report(Array(zip(inputs, tables)).map { (name: $0.0, table: $0.1) })
        }
        if let output {
            try ResultsTable.writeAtomically(text, to: output, force: force)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}
