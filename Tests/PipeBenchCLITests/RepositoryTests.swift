import Foundation
import Testing
@testable import PipeHarness

/// The repository speaks of the project alone: no file names the rounds or tasks of the
/// project's own development (results name commits and dates instead), and none points at a
/// path outside the repository, which a user of a clone does not have.
@Suite struct RepositoryTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A clone (not an exported tree): `git grep` reads the tracked files.
    static let isGitCheckout = (try? ChildProcess.run(["git", "-C", root, "rev-parse", "--git-dir"]))?.status == 0

    /// The tracked files' lines that match `pattern` (an extended regular expression, case
    /// insensitive), as `path:line:text`.
    static func trackedLines(matching pattern: String) throws -> [String] {
        let child = try ChildProcess.run(["git", "-C", root, "grep", "-nIiE", pattern])
        // git grep: 0 = matches, 1 = none, anything else = it could not search.
        try #require(child.status == 0 || child.status == 1, "git grep failed: \(child.standardError)")
        return child.standardOutput.split(whereSeparator: \.isNewline).map(String.init)
    }

    @Test(.enabled(if: isGitCheckout, "not a git checkout"))
    func noFileNamesTheProjectsOwnHistory() throws {
        // Spelled in pieces so that this file does not match itself.
        let pattern = ["session [0-9]", "this " + "session", "issue ?#?[0-9]", "issue" + "7"].joined(separator: "|")
        let hits = try Self.trackedLines(matching: pattern)
        #expect(hits.isEmpty, "name commits and dates instead:\n\(hits.joined(separator: "\n"))")
    }

    @Test(.enabled(if: isGitCheckout, "not a git checkout"))
    func noFilePointsOutsideTheRepository() throws {
        let pattern = ["\\.\\./" + "shared", "shared/" + "seed", "MACHINE-" + "NOTES", "shared/" + "SPEC"].joined(separator: "|")
        let hits = try Self.trackedLines(matching: pattern)
        #expect(hits.isEmpty, "cite the upstream file and revision instead:\n\(hits.joined(separator: "\n"))")
    }
}
