import ArgumentParser
import Foundation
import PipeHarness
import PipeResults
#if canImport(Glibc)
import Glibc
#endif

/// An error the CLI reports in one line, with the exit status it deserves.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    let code: Int32
    var description: String { message }

    /// Bad flags or values: EX_USAGE.
    static func usage(_ m: String) -> CLIError { CLIError(message: m, code: 64) }
    /// A bad input file: EX_DATAERR.
    static func data(_ m: String) -> CLIError { CLIError(message: m, code: 65) }
    /// An output that cannot be written: EX_CANTCREAT.
    static func output(_ m: String) -> CLIError { CLIError(message: m, code: 73) }
    /// The measurement itself failed.
    static func failure(_ m: String) -> CLIError { CLIError(message: m, code: 1) }
    /// EX_UNAVAILABLE: a tool pipebench needs (strace, ptrace) is missing here.
    static func unavailable(_ m: String) -> CLIError { CLIError(message: m, code: 69) }

    init(message: String, code: Int32) {
        self.message = message
        self.code = code
    }

    /// Classifies library errors.
    init(_ error: Error) {
        switch error {
        case let e as CLIError: self = e
        case let e as SweepError: self = .usage(e.message)
        case let e as ResultsError: self = e.kind == .input ? .data(e.message) : .output(e.message)
        case let e as HarnessError: self = .failure("measurement failed: \(e.description)")
        case let e as TraceError: self = .data(e.description)
        case let e as TraceRecorder.Unavailable: self = .unavailable(e.message)
        default: self = .failure("\(error)")
        }
    }
}

/// A command's body whose errors are reported in one line (see `PipeBenchMain`).
protocol PipeBenchCommand: ParsableCommand {
    func execute() throws
}

extension PipeBenchCommand {
    func run() throws {
        do { try execute() } catch let e as ExitCode { throw e } catch { throw CLIError(error) }
    }
}

struct PipeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipebench",
        abstract: "Measure PipeEngine (a user-space model of FreeBSD's pipe) beside Linux's own IPC.",
        discussion: """
        Start with `pipebench run`: a one-minute suite that answers how the engine's buffered \
        and direct paths compare with the Linux pipe and with memcpy, the physical limit, in \
        throughput and in 1-byte round-trip latency. Results are saved as CSV under results/.

        Examples:
          pipebench run
          pipebench run --transport engine,linux-pipe --write-size 1M --mindirect 16K
          pipebench sweep --transport engine,linux-pipe --write-size 64,4K..1M --mindirect 4K,8K,16K
          pipebench compare results/old.csv results/new.csv
          pipebench export results/run.csv --to markdown
          pipebench topology
          pipebench sysctl

        Shell completions: pipebench --generate-completion-script bash|zsh|fish
        Exit status: 0 success; 2 compare found a regression; 4 compare found only \
        improvements; 64 bad flags or values; 65 a bad input file; 73 an output that cannot \
        be written; 69 a tool it needs (strace, ptrace) unavailable; 1 a measurement that failed.
        """,
        version: pipeBenchVersion,
        subcommands: [RunCommand.self, SweepCommand.self, TraceCommand.self, ReplayCommand.self,
                      CompareCommand.self, ExportCommand.self,
                      ExplainCommand.self, TopologyCommand.self, SysctlCommand.self, ColumnsCommand.self]
    )
}

@main
enum PipeBenchMain {
    static func main() {
        let command: ParsableCommand
        do {
            command = try PipeBench.parseAsRoot()
        } catch {
            fail(error)
        }
        do {
            var c = command
            try c.run()
        } catch {
            fail(error)
        }
        exit(0)
    }

    /// Help, versions and completion scripts go through ArgumentParser; every error becomes
    /// one line on standard error.
    static func fail(_ error: Error) -> Never {
        if let e = error as? CLIError {
            stderrLine("pipebench: error: \(e.message)")
            exit(e.code)
        }
        if let e = error as? ExitCode { exit(e.rawValue) }
        let code = PipeBench.exitCode(for: error)
        if code == .success { PipeBench.exit(withError: error) }
        var message = PipeBench.message(for: error)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .joined(separator: "; ")
        if message.hasPrefix("Error: ") { message.removeFirst(7) }
        let sub = CommandLine.arguments.dropFirst().first { !$0.hasPrefix("-") } ?? ""
        let known = PipeBench.configuration.subcommands.map { $0._commandName }
        let help = known.contains(sub) ? "pipebench \(sub) --help" : "pipebench --help"
        stderrLine("pipebench: error: \(message) (see '\(help)')")
        exit(code.rawValue)
    }
}

func stderrLine(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

func stderrWrite(_ s: String) {
    FileHandle.standardError.write(Data(s.utf8))
}
