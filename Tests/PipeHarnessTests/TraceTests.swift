import Foundation
import Testing
@testable import PipeHarness

/// A small trace with every kind of record: two pipes, a run, an error.
func sampleTrace() -> PipeTrace {
    let header = PipeTrace.Header(
        command: ["sh", "-c", "a | b"], recorded: "2026-12-04T00:00:00Z", exitStatus: 0, tracer: "strace -- version 6.1",
        tools: [PipeTrace.Tool(path: "/usr/bin/sh", package: "dash", version: "0.5.12-2")],
        machine: PipeTrace.Machine(hostname: "h", kernel: "6.1", arch: "x86_64", cpuModel: nil, onlineCPUs: 2),
        pipebench: "0.1.0 test")
    return PipeTrace(header: header, pipes: [
        PipeTrace.Pipe(id: 0, inode: 7, creator: 100, createdNs: 0),
        PipeTrace.Pipe(id: 1, inode: 8, creator: 100, createdNs: 10),
    ], calls: [
        PipeTrace.Call(pipe: 0, pid: 101, end: .write, call: "write", asked: 4096, returned: 4096, startNs: 100, durationNs: 5, gapNs: nil),
        PipeTrace.Call(pipe: 0, pid: 101, end: .write, call: "write", asked: 4096, returned: 4096, startNs: 200, durationNs: 5, gapNs: 20, count: 9),
        PipeTrace.Call(pipe: 0, pid: 102, end: .read, call: "read", asked: 65536, returned: 40960, startNs: 300, durationNs: 9, gapNs: nil),
        PipeTrace.Call(pipe: 1, pid: 102, end: .write, call: "writev", asked: 300, returned: 300, startNs: 400, durationNs: 3, gapNs: nil),
        PipeTrace.Call(pipe: 1, pid: 103, end: .read, call: "read", asked: 16384, returned: 300, startNs: 500, durationNs: 3, gapNs: nil),
        PipeTrace.Call(pipe: 1, pid: 102, end: .write, call: "write", asked: 8, returned: -1, error: "EPIPE", startNs: 600, durationNs: 1, gapNs: 197),
    ])
}

@Suite struct TraceFormatTests {
    @Test func aTraceReadsBackAsItWasWritten() throws {
        let trace = sampleTrace()
        let text = trace.ndjson()
        #expect(text.split(separator: "\n").count == 1 + 2 + 6 + 1)
        #expect(text.hasPrefix("{\"type\":\"header\""))
        #expect(try PipeTrace.parse(text) == trace)
        #expect(trace.callCount == 14)
        #expect(trace.bytes(pipe: 0, .write) == 40960)
    }

    /// Each broken file is refused, naming the line it failed on.
    @Test func aMalformedOrTruncatedTraceIsRefusedWithItsLine() throws {
        let lines = sampleTrace().ndjson().split(separator: "\n").map(String.init)
        func error(_ ls: [String]) -> TraceError? {
            do { _ = try PipeTrace.parse(ls.joined(separator: "\n") + "\n"); return nil } catch let e as TraceError { return e } catch { return nil }
        }
        // Cut at a line boundary: the end record is missing.
        let cut = error(Array(lines.dropLast()))
        #expect(cut?.line == lines.count - 1)
        #expect(cut?.message.contains("cut short") == true)
        // Cut inside a line.
        var inside = Array(lines.prefix(5))
        inside[4] = String(inside[4].prefix(30))
        let partial = error(inside)
        #expect(partial?.line == 5)
        #expect(partial?.message.contains("not a trace record") == true)
        // Another schema.
        var schema = lines
        schema[0] = schema[0].replacingOccurrences(of: "pipebench-trace/1", with: "pipebench-trace/9")
        #expect(error(schema)?.line == 1)
        #expect(error(schema)?.message.contains("pipebench-trace/9") == true)
        // A call on a pipe no record declared.
        var undeclared = lines
        undeclared[3] = undeclared[3].replacingOccurrences(of: "\"pipe\":0", with: "\"pipe\":5")
        #expect(error(undeclared)?.line == 4)
        #expect(error(undeclared)?.message.contains("pipe 5") == true)
        // A field of the wrong type.
        var wrong = lines
        wrong[4] = wrong[4].replacingOccurrences(of: "\"asked\":4096", with: "\"asked\":\"4096\"")
        #expect(error(wrong)?.line == 5)
        #expect(error(wrong)?.message.contains("asked") == true)
        // Calls out of start order.
        var order = lines
        order.swapAt(4, 5)
        #expect(error(order)?.line == 6)
        // The end record's counts disagree.
        var count = lines
        count[count.count - 1] = "{\"type\":\"end\",\"calls\":2,\"pipes\":2}"
        #expect(error(count)?.line == lines.count)
        // A record after the end.
        #expect(error(lines + [lines[3]])?.line == lines.count + 1)
        // More read out of a pipe than was written in.
        var over = lines
        over[5] = over[5].replacingOccurrences(of: "\"ret\":40960", with: "\"ret\":45056")
        #expect(error(over)?.message.contains("only 40960 were written") == true)
        // Not a file at all.
        #expect(throws: TraceError.self) { try PipeTrace.read(from: "/nonexistent/trace.ndjson") }
    }
}

@Suite struct StraceLogTests {
    /// The lines of strace's per-process files, taken apart exactly: vectors summed, both ends
    /// of a splice, errors kept, unfinished calls, files and pipes the command did not make left out.
    @Test func straceLinesBecomeTheirPipeCalls() throws {
        let parent = """
        1000.000000100 pipe2([3<pipe:[7]>, 4<pipe:[7]>], O_CLOEXEC) = 0 <0.000001000>
        1000.000001000 writev(4<pipe:[7]>, [{iov_base="a"..., iov_len=10}, {iov_base="b"..., iov_len=20}], 2) = 30 <0.000002000>
        1000.000010000 write(1<pipe:[99]>, "x"..., 5) = 5 <0.000001000>
        1000.000020000 write(4<pipe:[7]>, "\\","..., 8) = -1 EPIPE (Broken pipe) <0.000001000>
        1000.000030000 write(5</tmp/a,b>, "x"..., 8) = 8 <0.000001000>
        1000.000040000 execve("/usr/bin/x\\x79z", ["x"...], 0x1 /* 1 var */) = 0 <0.000100000>
        """
        let child = """
        1000.000005000 readv(3<pipe:[7]>, [{iov_base="a", iov_len=4}, {iov_base="b"..., iov_len=40}], 2) = 30 <0.000001000>
        1000.000008000 splice(3<pipe:[7]>, NULL, 6</tmp/out>, NULL, 65536, SPLICE_F_MOVE) = 0 <0.000001000>
        1000.000009000 read(3<pipe:[7]>,  <unfinished ...>
        1000.000050000 read(3<pipe:[7]>, "", 16) = ? <0.000001000>
        """
        let parsed = StraceLog.parse([100: parent, 101: child], mergeRuns: false)
        #expect(parsed.pipes == [PipeTrace.Pipe(id: 0, inode: 7, creator: 100, createdNs: 0)])
        #expect(parsed.executables == ["/usr/bin/xyz"])
        let expected = [
            PipeTrace.Call(pipe: 0, pid: 100, end: .write, call: "writev", asked: 30, returned: 30, startNs: 900, durationNs: 2000, gapNs: nil),
            PipeTrace.Call(pipe: 0, pid: 101, end: .read, call: "readv", asked: 44, returned: 30, startNs: 4900, durationNs: 1000, gapNs: nil),
            PipeTrace.Call(pipe: 0, pid: 101, end: .read, call: "splice", asked: 65536, returned: 0, startNs: 7900, durationNs: 1000, gapNs: 2000),
            PipeTrace.Call(pipe: 0, pid: 100, end: .write, call: "write", asked: 8, returned: -1, error: "EPIPE", startNs: 19900, durationNs: 1000, gapNs: 17000),
        ]
        #expect(parsed.calls == expected)
    }

    @Test func identicalCallsInARowBecomeOneRun() {
        var lines: [String] = ["1000.000000000 pipe([3<pipe:[9]>, 4<pipe:[9]>]) = 0 <0.000001000>"]
        for i in 0..<5 { lines.append(String(format: "1000.%09d", 10_000 + 10_000 * i) + " write(4<pipe:[9]>, \"y\"..., 8192) = 8192 <0.000001000>") }
        lines.append("1000.000090000 write(4<pipe:[9]>, \"y\"..., 100) = 100 <0.000001000>")
        let parsed = StraceLog.parse([1: lines.joined(separator: "\n")])
        // The first call stands alone (it has no gap); the next four are one run of 9 µs gaps.
        #expect(parsed.calls.map(\.count) == [1, 4, 1])
        #expect(parsed.calls[1].gapNs == 9000)
        #expect(parsed.calls[1].startNs == 20000)
        #expect(parsed.calls.reduce(0) { $0 + $1.bytes } == 5 * 8192 + 100)
    }
}

@Suite(.serialized) struct TraceRecorderTests {
    /// A real pipeline whose calls are known: sh makes the pipe and dup2s its ends onto the
    /// two dd's standard output and input; dd writes three 100-byte blocks, the other reads
    /// 50 bytes at a time until end of file.
    @Test func aKnownPipelineIsRecordedExactly() throws {
        let trace = try TraceRecorder.record(
            ["sh", "-c", "dd if=/dev/zero bs=100 count=3 status=none | dd of=/dev/null bs=50 status=none"], mergeRuns: false)
        #expect(trace.header.exitStatus == 0)
        #expect(trace.header.command.first == "sh")
        #expect(trace.header.tools.contains { $0.path.hasSuffix("/dd") && $0.package == "coreutils" })
        #expect(trace.pipes.count == 1)
        let writes = trace.calls.filter { $0.end == .write }
        let reads = trace.calls.filter { $0.end == .read }
        #expect(writes.map(\.call) == ["write", "write", "write"])
        #expect(writes.map(\.asked) == [100, 100, 100])
        #expect(writes.map(\.returned) == [100, 100, 100])
        #expect(reads.map(\.asked) == [Int](repeating: 50, count: 7))
        #expect(reads.map(\.returned) == [Int](repeating: 50, count: 6) + [0])
        #expect(Set(writes.map(\.pid)).count == 1 && Set(reads.map(\.pid)).count == 1 && writes[0].pid != reads[0].pid)
        #expect(writes[0].gapNs == nil && writes.dropFirst().allSatisfy { $0.gapNs != nil })
        // Written out and read back, it is the same trace.
        #expect(try PipeTrace.parse(trace.ndjson()) == trace)
    }

    @Test func straceMissingIsOneClearError() throws {
        #expect(throws: TraceRecorder.Unavailable.self) {
            try TraceRecorder.straceExecutable(environment: ["PATH": "/nonexistent"])
        }
        #expect(throws: TraceRecorder.Unavailable.self) {
            try TraceRecorder.straceExecutable(environment: ["PIPEBENCH_STRACE": "/nonexistent/strace"])
        }
        #expect(try TraceRecorder.straceExecutable().hasSuffix("strace"))
    }
}
