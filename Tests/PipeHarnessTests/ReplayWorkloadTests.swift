import Foundation
import Testing
@testable import PipeHarness

/// A trace of the given pipes' calls, for replays: each entry (pipe, pid, end, calls).
func replayTrace(pipes: Int, _ calls: [PipeTrace.Call]) -> PipeTrace {
    var trace = sampleTrace()
    trace.pipes = (0..<pipes).map { PipeTrace.Pipe(id: $0, inode: UInt64(10 + $0), creator: 1, createdNs: 0) }
    trace.calls = calls
    return trace
}

func call(_ pipe: Int, _ pid: Int32, _ end: PipeTrace.End, asked: Int, returned: Int? = nil, error: String? = nil,
          count: Int = 1, at t: Int64 = 0, gap: Int64? = nil) -> PipeTrace.Call {
    PipeTrace.Call(pipe: pipe, pid: pid, end: end, call: end == .write ? "write" : "read", asked: asked,
                   returned: error == nil ? returned ?? asked : -1, error: error, startNs: t, durationNs: 100, gapNs: gap, count: count)
}

@Suite struct ReplayWorkloadTests {
    /// Every transport moves exactly the recorded bytes, checked byte for byte, with the
    /// recorded number of writes: the direct path's sizes and the buffered path's.
    @Test(arguments: ReplayConfig.transports)
    func aVerifiedReplayMovesExactlyTheRecordedBytes(_ transport: TransportKind) throws {
        let trace = replayTrace(pipes: 2, [
            call(0, 1, .write, asked: 4096, count: 10),
            call(0, 1, .write, asked: 100, at: 1),
            call(0, 1, .write, asked: 70_000, at: 2),
            call(0, 2, .read, asked: 65536, returned: 65536, at: 3),
            call(0, 2, .read, asked: 65536, returned: 45_524, at: 4),
            call(0, 2, .read, asked: 65536, returned: 0, at: 5),
            call(1, 2, .write, asked: 512, count: 64, at: 6),
            call(1, 3, .read, asked: 1000, returned: 1000, count: 32, at: 7),
            call(1, 3, .read, asked: 1000, returned: 768, at: 8),
        ])
        let r = try ReplayWorkload.run(ReplayConfig(transport: transport, trace: trace, traceName: "t", verify: true))
        #expect(r.integrityError == nil)
        #expect(r.integrityOK)
        #expect(r.bytesRead == 40960 + 100 + 70_000 + 512 * 64)
        #expect(r.bytesRead == r.recordedBytesRead)
        #expect(r.bytesWritten == r.bytesRead)
        #expect(r.writeCalls == 12 + 64)
        #expect(r.readCalls >= 2 + 33)
        #expect(r.pipes == 2 && r.writerThreads == 2 && r.readerThreads == 2)
        #expect(r.traceCalls == 10 + 2 + 3 + 64 + 33)
        #expect(r.brokenPipeWrites == 0)
    }

    /// `yes | head`: the reader reads less than was written and goes; the writer's next write
    /// gets EPIPE, as in the recording, and the replay ends.
    @Test func aReaderThatStopsEarlyEndsTheWriterWithEPIPE() throws {
        let trace = replayTrace(pipes: 1, [
            call(0, 1, .write, asked: 8192, count: 200),
            call(0, 1, .write, asked: 8192, error: "EPIPE", at: 2),
            call(0, 2, .read, asked: 8192, count: 10, at: 1),
        ])
        for transport in [TransportKind.engine, .linuxPipe] {
            let r = try ReplayWorkload.run(ReplayConfig(transport: transport, trace: trace, traceName: "yes", verify: true))
            #expect(r.integrityOK, "\(transport)")
            #expect(r.bytesRead == 81920)
            #expect(r.brokenPipeWrites == 1)
            #expect(r.bytesWritten >= 81920 && r.bytesWritten < 200 * 8192)
        }
    }

    /// Two processes write into one end and two read from the other: every reader gets its
    /// recorded share, whoever's bytes they are.
    @Test func sharedEndsGiveEachReaderItsShare() throws {
        let trace = replayTrace(pipes: 1, [
            call(0, 1, .write, asked: 300, count: 100),
            call(0, 2, .write, asked: 500, count: 40, at: 1),
            call(0, 3, .read, asked: 4096, returned: 4096, count: 5, at: 2),
            call(0, 4, .read, asked: 1024, returned: 1024, count: 28, at: 3),
            call(0, 4, .read, asked: 1024, returned: 848, at: 4),
        ])
        let r = try ReplayWorkload.run(ReplayConfig(transport: .engine, trace: trace, traceName: "shared", verify: true))
        #expect(r.integrityOK)
        #expect(r.bytesRead == 50_000 && r.bytesWritten == 50_000)
        #expect(r.writerThreads == 2 && r.readerThreads == 2)
    }

    /// Recorded timing spends the gaps: a replay of 20 writes 200 µs apart cannot take less
    /// than their sum (a lower bound of the work, not a timing of the machine).
    @Test func recordedTimingSpendsTheGaps() throws {
        let trace = replayTrace(pipes: 1, [
            call(0, 1, .write, asked: 64, count: 20, gap: 200_000),
            call(0, 2, .read, asked: 64, count: 20, at: 1),
        ])
        let r = try ReplayWorkload.run(ReplayConfig(transport: .engine, trace: trace, traceName: "gaps", timing: .recorded))
        #expect(r.wallNs >= 20 * 200_000)
        #expect(r.bytesRead == 1280)
    }
}
