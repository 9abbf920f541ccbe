import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// A child process run to completion, its standard output and error captured.
///
/// It replaces Foundation's `Process` and `Pipe` in the harness: every descriptor it makes is
/// close-on-exec from the start (`pipe2(O_CLOEXEC)`), and the child gets exactly its three
/// standard descriptors (`posix_spawn` with `closefrom(3)`), so neither this child nor one
/// that another thread spawns at the same moment inherits a descriptor it should not hold.
public struct ChildProcess: Sendable {
    /// The exit status (128 + N when signal N ended it).
    public var status: Int32
    public var stdout: [UInt8]
    public var stderr: [UInt8]

    public var standardOutput: String { String(decoding: stdout, as: UTF8.self) }
    public var standardError: String { String(decoding: stderr, as: UTF8.self) }

    /// Runs `arguments[0]` (looked up on PATH) with the rest as its arguments, in `directory`
    /// (nil: this process's), with `environment` (nil: this process's), its standard input
    /// from /dev/null, and waits for it. Throws when it cannot be started.
    public static func run(_ arguments: [String], in directory: String? = nil,
                           environment: [String]? = nil) throws -> ChildProcess {
        precondition(!arguments.isEmpty, "ChildProcess.run needs a program")
        let out = try FD.pipe(what: "child stdout")
        let err: (read: Int32, write: Int32)
        do { err = try FD.pipe(what: "child stderr") } catch {
            var a = out.read, b = out.write
            FD.close(&a); FD.close(&b)
            throw error
        }
        var outRead = out.read, outWrite = out.write, errRead = err.read, errWrite = err.write
        defer { FD.close(&outRead); FD.close(&outWrite); FD.close(&errRead); FD.close(&errWrite) }
        let pid = try spawn(arguments, in: directory, environment: environment,
                            stdin: -1, stdout: outWrite, stderr: errWrite, closeOthers: true)
        // The parent's copies of the write ends go, so that the child's exit is end of file.
        FD.close(&outWrite)
        FD.close(&errWrite)
        var result = ChildProcess(status: -1, stdout: [], stderr: [])
        try drain(&outRead, into: &result.stdout, &errRead, into: &result.stderr)
        result.status = pb_wait_exit(pid)
        return result
    }

    /// `posix_spawnp` with the given descriptors as the child's 0, 1 and 2 (-1: /dev/null);
    /// with `closeOthers`, every other descriptor is closed in the child whatever its
    /// close-on-exec flag. The child's pid; wait for it with `waitForExit`.
    public static func spawn(_ arguments: [String], in directory: String? = nil,
                             environment: [String]? = nil, stdin: Int32, stdout: Int32,
                             stderr: Int32, closeOthers: Bool) throws -> Int32 {
        var pid: Int32 = 0
        let e = withCStrings(arguments) { argv in
            withOptionalCStrings(environment) { envp in
                pb_spawn(argv, envp, directory, stdin, stdout, stderr, closeOthers ? 1 : 0, &pid)
            }
        }
        if e != 0 {
            throw HarnessError.system(call: "posix_spawnp", errno: e, context: arguments[0])
        }
        return pid
    }

    /// waitpid until the child exits: its status, 128 + N when signal N ended it.
    public static func waitForExit(_ pid: Int32) -> Int32 { pb_wait_exit(pid) }

    /// Reads both pipes to end of file with poll(2), so that neither can fill and block the child.
    private static func drain(_ a: inout Int32, into aBytes: inout [UInt8],
                              _ b: inout Int32, into bBytes: inout [UInt8]) throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while a >= 0 || b >= 0 {
            var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
            let r = poll(&fds, 2, -1)
            if r < 0 {
                if errno == EINTR { continue }
                throw HarnessError.system(call: "poll", errno: errno, context: "child output")
            }
            for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = try chunk.withUnsafeMutableBytes {
                    try FD.read(fds[i].fd, $0.baseAddress!, $0.count, what: "child output")
                }
                if n == 0 {
                    if i == 0 { FD.close(&a) } else { FD.close(&b) }
                } else if i == 0 {
                    aBytes += chunk[0..<n]
                } else {
                    bBytes += chunk[0..<n]
                }
            }
        }
    }
}

/// A NULL-terminated `char *const[]` of `strings`, valid inside `body`.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

private func withOptionalCStrings<R>(_ strings: [String]?, _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    guard let strings else { return body(nil) }
    return withCStrings(strings) { body($0) }
}
