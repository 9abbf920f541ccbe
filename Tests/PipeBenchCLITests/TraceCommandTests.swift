import Foundation
import Testing
@testable import PipeHarness
@testable import PipeResults

/// `pipebench trace` and `pipebench replay` from the command line: a real pipeline recorded
/// and replayed with every byte checked, and each way they refuse, with its exit status.
@Suite(.serialized) struct TraceCommandTests {
    /// Runs the built pipebench with `environment` added to this process's.
    func pipebenchWith(_ args: [String], environment: [String: String], in dir: String) throws -> Outcome {
        guard let binary = pipebenchBinary() else {
            Issue.record("pipebench binary not found next to the tests; build it with `swift build`")
            return Outcome(status: -1, stdout: "", stderr: "")
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let child = try ChildProcess.run([binary] + args, in: dir, environment: env.map { "\($0.key)=\($0.value)" })
        return Outcome(status: child.status, stdout: child.standardOutput, stderr: child.standardError)
    }

    @Test func aRecordedPipelineReplaysEveryByteOverEachTransport() throws {
        let dir = makeTempDir()
        let traced = try pipebench(["trace", "--out", "t.ndjson", "--", "sh", "-c",
                                    "dd if=/dev/zero bs=64K count=16 status=none | dd of=/dev/null bs=4K status=none"], in: dir)
        #expect(traced.status == 0, "\(traced.stderr)")
        #expect(traced.stderr.contains("Recorded 1 pipe"))
        let trace = try PipeTrace.read(from: dir + "/t.ndjson")
        #expect(trace.bytes(pipe: 0, .write) == 1 << 20 && trace.bytes(pipe: 0, .read) == 1 << 20)

        let replayed = try pipebench(["replay", "t.ndjson", "--transport", "engine,linux-pipe,unix-socket", "--verify",
                                      "--repetitions", "2", "--warmup", "0", "--csv", "r.csv", "--progress", "none"], in: dir)
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(replayed.stdout.contains("Replay:"))
        let table = try ResultsTable.read(path: dir + "/r.csv")
        #expect(table.rows.count == 6)
        for i in table.rows.indices {
            #expect(table.value(i, "workload") == "replay")
            #expect(table.value(i, "integrity_ok") == "true")
            #expect(table.value(i, "bytes_B") == String(1 << 20))
            #expect(table.value(i, "recorded_B") == String(1 << 20))
            #expect(table.value(i, "trace") == "t.ndjson")
            #expect(table.value(i, "timing") == "asap")
            #expect(table.value(i, "trace_pipes") == "1")
        }
        #expect(Set(table.rows.indices.map { table.value($0, "transport") }) == ["engine", "linux-pipe", "unix-socket"])
    }

    @Test func aBadTraceFileIsRefusedWithItsLine() throws {
        let dir = makeTempDir()
        write("{\"type\":\"header\",\"schema\":\"pipebench-trace/1\"\n", dir + "/bad.ndjson")
        let r = try pipebench(["replay", "bad.ndjson"], in: dir)
        #expect(r.status == 65)
        #expect(r.stderr.contains("bad.ndjson: line 1:"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        let missing = try pipebench(["replay", "none.ndjson"], in: dir)
        #expect(missing.status == 65)
    }

    @Test func straceMissingIsOneClearError() throws {
        let dir = makeTempDir()
        let r = try pipebenchWith(["trace", "--out", "t.ndjson", "--", "true"], environment: ["PATH": "/nonexistent"], in: dir)
        #expect(r.status == 69)
        #expect(r.stderr.contains("strace is not installed"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir + "/t.ndjson"))
    }

    /// A process can have one tracer: under an outer strace that follows its children, the
    /// inner strace's ptrace is refused (EPERM), as a container without SYS_PTRACE refuses it.
    @Test func ptraceRefusedIsOneClearError() throws {
        guard let binary = pipebenchBinary() else { Issue.record("pipebench binary not found"); return }
        let dir = makeTempDir()
        let strace = try TraceRecorder.straceExecutable()
        let child = try ChildProcess.run([strace, "-f", "-qq", "-o", "/dev/null", binary, "trace", "--out", "t.ndjson", "--", "true"], in: dir)
        #expect(child.status == 69)
        #expect(child.standardError.contains("ptrace is refused here"))
        #expect(child.standardError.split(separator: "\n").count == 1)
    }
}
