import CPipeSys
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Records the pipe traffic of a real command: runs it under `strace` (``StraceLog``'s
/// options), reads what strace wrote, and makes a ``PipeTrace`` with the command, the tools'
/// versions and the machine.
///
/// The command keeps this process's standard input and output; its standard error, which
/// strace shares, is passed through once the command ends, strace's own complaints taken out
/// and turned into one ``TraceRecorder/Unavailable`` error when it could not trace at all.
/// strace stops the command at every traced call, so the recorded durations and gaps carry
/// that cost (a few µs a call here): sizes and order are exact, times are upper bounds.
public enum TraceRecorder {
    /// strace could not be run or could not trace: what to do about it.
    public struct Unavailable: Error, CustomStringConvertible, Sendable, Equatable {
        public let message: String
        public var description: String { message }
    }

    /// The strace to run: `PIPEBENCH_STRACE` when set, else `strace` on `PATH`.
    public static func straceExecutable(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        if let given = environment["PIPEBENCH_STRACE"], !given.isEmpty {
            guard access(given, X_OK) == 0 else {
                throw Unavailable(message: "PIPEBENCH_STRACE=\(given): no executable there; unset it to use strace from PATH")
            }
            return given
        }
        for dir in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/strace"
            if access(path, X_OK) == 0 { return path }
        }
        throw Unavailable(message: "strace is not installed, and pipebench trace records a command's pipe calls with it: install it with `apt-get install strace` (scripts/setup does), or point PIPEBENCH_STRACE at one")
    }

    /// Runs `command` under strace and returns its trace. Throws ``Unavailable`` when strace
    /// is missing or may not trace here.
    public static func record(_ command: [String], mergeRuns: Bool = true) throws -> PipeTrace {
        precondition(!command.isEmpty, "TraceRecorder.record needs a command")
        let strace = try straceExecutable()
        let version = (try? ChildProcess.run([strace, "-V"]))?.standardOutput
            .split(separator: "\n").first.map(String.init) ?? "strace"
        var template = Array("/tmp/pipebench-trace-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw HarnessError.system(call: "mkdtemp", errno: errno, context: "trace output")
        }
        let dir = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let errPath = dir + "/stderr"
        var errFD = open(errPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard errFD >= 0 else { throw HarnessError.system(call: "open", errno: errno, context: errPath) }
        let recorded = ISO8601DateFormatter().string(from: Date())
        let pid: Int32
        do {
            pid = try ChildProcess.spawn([strace] + StraceLog.options(outputPrefix: dir + "/t") + ["--"] + command,
                                         stdin: 0, stdout: 1, stderr: errFD, closeOthers: true)
        } catch {
            FD.close(&errFD)
            throw error
        }
        FD.close(&errFD)
        let status = ChildProcess.waitForExit(pid)
        let stderrText = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        // strace's own lines begin with the name it was run by ("/usr/bin/strace: "); the
        // command's pass through.
        let lines = stderrText.split(separator: "\n", omittingEmptySubsequences: false)
        let prefixes = ["strace: ", "\(strace): "]
        let isOwn: (Substring) -> Bool = { line in prefixes.contains { line.hasPrefix($0) } }
        let own = lines.filter(isOwn).map { line in line.dropFirst(prefixes.first { line.hasPrefix($0) }!.count) }
        let passed = lines.filter { !isOwn($0) }.joined(separator: "\n")
        if !passed.isEmpty { FileHandle.standardError.write(Data(passed.utf8)) }

        var files: [Int32: String] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where name.hasPrefix("t.") {
            if let p = Int32(name.dropFirst(2)), let text = try? String(contentsOfFile: dir + "/" + name, encoding: .utf8) {
                files[p] = text
            }
        }
        if let refusal = refusal(own) {
            throw Unavailable(message: "ptrace is refused here, so strace cannot follow the command (\(refusal)): allow it — in a container, --cap-add SYS_PTRACE or a seccomp profile that permits ptrace; on the host, /proc/sys/kernel/yama/ptrace_scope 0 or 1")
        }
        if files.isEmpty {
            let why = own.isEmpty ? "exit status \(status)" : own.joined(separator: "; ")
            throw Unavailable(message: "strace recorded nothing of `\(command.joined(separator: " "))` (\(why))")
        }
        let parsed = StraceLog.parse(files, mergeRuns: mergeRuns)
        let env = EnvironmentInfo.capture()
        let header = PipeTrace.Header(
            command: command, recorded: recorded, exitStatus: status, tracer: version,
            tools: parsed.executables.map(tool), machine: PipeTrace.Machine(
                hostname: env.hostname, kernel: env.kernel.release, arch: env.kernel.machine,
                cpuModel: env.cpuModel, onlineCPUs: env.onlineCPUs),
            pipebench: "\(pipeBenchVersion) \(env.gitCommit)")
        return PipeTrace(header: header, pipes: parsed.pipes, calls: parsed.calls)
    }

    /// strace's message (its name taken off) when ptrace itself was refused (EPERM from
    /// PTRACE_TRACEME, SEIZE or ATTACH: another tracer, a seccomp filter, Yama), or nil.
    static func refusal(_ straceLines: [Substring]) -> String? {
        straceLines.first { $0.contains("ptrace") && ($0.contains("Operation not permitted") || $0.contains("EPERM")) }
            .map(String.init)
    }

    /// A program with its Debian package and version, where dpkg knows it.
    static func tool(_ path: String) -> PipeTrace.Tool {
        let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map {
            $0.hasPrefix("/") ? $0 : (path as NSString).deletingLastPathComponent + "/" + $0
        } ?? path
        var found = PipeTrace.Tool(path: path)
        // Debian's merged /usr: dpkg may know /bin/dash as such, not as /usr/bin/dash.
        let candidates = [real, path].flatMap { [$0] + ($0.hasPrefix("/usr/") ? [String($0.dropFirst(4))] : []) }
        for candidate in candidates {
            guard let owner = try? ChildProcess.run(["dpkg", "-S", candidate]), owner.status == 0,
                  let line = owner.standardOutput.split(separator: "\n").first(where: { !$0.hasPrefix("diversion") }),
                  let colon = line.range(of: ": ") else { continue }
            let package = String(line[..<colon.lowerBound].split(separator: ",").first ?? "")
            found.package = package
            if let v = try? ChildProcess.run(["dpkg-query", "-W", "-f=${Version}", package]), v.status == 0 {
                found.version = v.standardOutput
            }
            break
        }
        return found
    }
}
