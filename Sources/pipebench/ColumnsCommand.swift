import ArgumentParser
import Foundation
import PipeEngine
import PipeHarness
import PipeResults

struct ColumnsCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "columns",
        abstract: "Document the columns of the results CSV (\(ResultsSchema.csvVersion)), in order.",
        discussion: """
        Examples:
          pipebench columns
          pipebench columns --markdown
        """
    )

    @Flag(name: .customLong("markdown"), help: "Print a Markdown table.")
    var markdown = false

    func execute() throws {
        if markdown {
            print(ResultsSchema.markdownDocumentation(), terminator: "")
            return
        }
        var rows = [["#", "column", "type", "group", "meaning"]]
        for (i, c) in ResultsSchema.columns.enumerated() {
            rows.append(["\(i + 1)", c.name, c.type.rawValue, c.group.rawValue, c.doc])
        }
        print(TextTable.render(rows, leftAligned: [1, 2, 3, 4]))
    }
}
