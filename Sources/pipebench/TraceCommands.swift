import ArgumentParser
import Foundation
import PipeHarness
import PipeResults

struct TraceCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Record the pipe traffic of a real command into a trace file, for `pipebench replay`.",
        discussion: """
        Runs COMMAND under strace and keeps, for every pipe the command makes (pipe, pipe2: \
        the pipes of a shell's |, and those a program makes itself), every read, write, \
        readv, writev, splice, vmsplice and sendfile on either end: the process and the end, \
        the size asked and returned, when, and the gap since that process's previous call on \
        that pipe (its compute time). Descriptors are followed across fork, exec and dup2 by \
        the pipe's inode. The command keeps this terminal's standard input and output; give \
        it a shell for a pipeline. strace stops the command at each call, so times are upper \
        bounds; sizes and order are exact.

        The trace is NDJSON (pipebench-trace/1: a header with the command, the tools' \
        packages and versions and the machine, then the pipes, the calls and an end record). \
        Identical calls in a row by one process on one end are kept as one record with a \
        count and mean times; --no-merge keeps every call apart.

        Needs strace (apt-get install strace; scripts/setup installs it) and permission to \
        ptrace (in a container: --cap-add SYS_PTRACE). Exit status 69 when either is missing.

        Examples:
          pipebench trace --out gzip.ndjson -- sh -c 'tar cf - Sources | gzip -1 > /dev/null'
          pipebench trace --out yes.ndjson -- sh -c 'yes | head -c 100M > /dev/null'
          pipebench replay gzip.ndjson --transport engine,linux-pipe
        """
    )

    @Option(name: .customLong("out"), help: ArgumentHelp("Write the trace here.", valueName: "file"))
    var out: String
    @Flag(name: .customLong("force"), help: "Overwrite --out if it exists.")
    var force = false
    @Flag(name: .customLong("no-merge"), help: "One record per call, even for identical calls in a row.")
    var noMerge = false
    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The command to record, after --.", valueName: "command"))
    var command: [String] = []

    func execute() throws {
        var argv = command
        if argv.first == "--" { argv.removeFirst() }
        guard !argv.isEmpty else { throw CLIError.usage("trace needs a command after --, e.g. pipebench trace --out t.ndjson -- sh -c 'yes | head -c 1M'") }
        try ResultsTable.checkWritable(path: out, force: force, flag: "--out")
        let trace = try TraceRecorder.record(argv, mergeRuns: !noMerge)
        do { try trace.write(to: out) } catch let e as TraceError { throw CLIError.output(e.message) }
        stderrLine(Self.describe(trace, path: out))
    }

    /// What the trace holds, a line per pipe.
    static func describe(_ trace: PipeTrace, path: String) -> String {
        var lines = ["Recorded \(trace.pipes.count) pipe\(trace.pipes.count == 1 ? "" : "s"), \(trace.callCount) calls in \(String(format: "%.1f", Double(trace.spanNs) / 1e6)) ms (exit status \(trace.header.exitStatus)) to \(path)"]
        for p in trace.pipes {
            func side(_ end: PipeTrace.End) -> String {
                let calls = trace.calls.filter { $0.pipe == p.id && $0.end == end }
                let n = calls.reduce(0) { $0 + $1.count }
                let processes = Set(calls.map(\.pid)).count
                let bytes = trace.bytes(pipe: p.id, end)
                return "\(n) \(end == .write ? "write" : "read")\(n == 1 ? "" : "s") by \(processes) process\(processes == 1 ? "" : "es"), \(bytes) bytes"
            }
            lines.append("  pipe \(p.id): \(side(.write)); \(side(.read))")
        }
        return lines.joined(separator: "\n")
    }
}

struct ReplayCommand: PipeBenchCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a trace's pipes over transports, as ordinary results rows.",
        discussion: """
        Replays every pipe of FILE at once, each over a fresh channel of the transport, with \
        a thread for each process that wrote into it and one for each that read out of it, \
        making that process's calls on that end in their order with their sizes. \
        --timing asap (the default) leaves out the gaps between calls: what the pipe itself \
        costs; --timing recorded spends each recorded gap as busy work first: how much of \
        the pipeline's time the pipe decides. A reader never asks for more than it read in \
        the recording; the last writer (reader) of a pipe out closes its end, so a writer \
        still writing gets EPIPE, as in `yes | head`.

        Any parameter flag may list values, as in `pipebench sweep` (--mindirect 4K,8K,16K \
        answers which pipe_mindirect serves this pipeline best); --transport defaults to \
        engine,linux-pipe. --verify checks every byte of pipes with one writer and one \
        reader, and that every reader got exactly what it read in the recording.

        Examples:
          pipebench replay results/traces/tar-gzip.ndjson
          pipebench replay results/traces/tar-gzip.ndjson --timing asap,recorded
          pipebench replay results/traces/dd-cat.ndjson --transport engine --mindirect 4K,8K,64K,1M
        """
    )

    @Argument(help: ArgumentHelp("The trace to replay (pipebench trace --out FILE records one).", valueName: "file"))
    var file: String
    @OptionGroup(title: "Configuration") var params: ParameterOptions
    @OptionGroup(title: "Run and output") var runOptions: RunOptions

    func execute() throws {
        do { _ = try PipeTrace.read(from: file) } catch let e as TraceError { throw CLIError.data("\(file): \(e.description)") }
        var p = params
        guard p.trace.isEmpty else { throw CLIError.usage("replay takes its trace as its argument; leave out --trace") }
        if !p.workload.isEmpty && p.workload != [WorkloadKind.replay.rawValue] {
            throw CLIError.usage("replay replays a trace (--workload replay); leave out --workload")
        }
        p.trace = [file]
        if p.transport.isEmpty { p.transport = ["engine,linux-pipe"] }
        var builder = PlanBuilder()
        try builder.apply(p)
        builder.apply(runOptions)
        let points = try builder.spec.points()
        let repetitions = builder.repetitions ?? 5
        let execution = Execution(
            command: "replay", points: points, repetitions: repetitions, warmup: builder.warmup ?? 1,
            csvPath: builder.csv, jsonPath: builder.json, force: runOptions.force,
            progress: runOptions.progress, quiet: runOptions.quiet,
            timing: try builder.timing.resolved(repetitions: repetitions))
        let outputs = try execution.prepare()
        _ = try execution.run(outputs)
    }
}
