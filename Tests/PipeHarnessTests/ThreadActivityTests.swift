import Testing
import PipeEngine
import PipeResults
@testable import PipeHarness

/// What each result says the pipe and the scheduler did: the counts a workload records are
/// the ones its known traffic must make (each derived in its comment from the seed's rules).
@Suite(.serialized) struct ThreadActivityTests {
    static let mib = 1 << 20

    /// 1 MiB in 64 KiB writes over the engine: every write is at least pipe_mindirect and
    /// blocking, so each takes the direct path once and is held as one chunk (the first write
    /// grows the buffer to 64 KiB first: one growth): 16 direct writes, 16 chunks, no clone,
    /// no split. Sleeps depend on which thread gets there first, so only their accounting is
    /// asserted: each one ended either spinning or parked.
    @Test func engineStreamCountsItsDirectChunks() throws {
        let r = try StreamWorkload.run(StreamConfig(
            transport: .engine, totalBytes: Self.mib, writeSize: 65536, readSize: 65536, verify: true))
        #expect(r.integrityOK)
        let events = r.writerActivity.events + r.readerActivity.events
        #expect(events[.directWrite] == 16)
        #expect(events[.directChunk] == 16)
        #expect(events[.resizeGrow] == 1 && events[.resizeShrink] == 0)
        #expect(events[.clone] == 0 && events[.writeSplit] == 0)
        #expect(r.readerActivity.events[.directWrite] == 0, "the reader never writes")
        #expect(events[.sleepParked] + events[.sleepSpun] == events.sleeps)
    }

    /// A pingpong of 4 KiB messages (below pipe_mindirect: buffered) over the engine: per
    /// round trip, each of the two writes leaves bytes in the buffer (one pipeselwakeup each)
    /// and each of the two reads empties it, leaving at least PIPE_BUF free (one each): 4 per
    /// round trip, counted over the recorded round trips alone, not the warm-up.
    @Test func enginePingPongCountsOnlyTheRecordedRoundTrips() throws {
        let config = PingPongConfig(transport: .engine, messageSize: 4096, iterations: 200,
                                    warmupIterations: 30, verify: true)
        let r = try PingPongWorkload.run(config).result
        #expect(r.integrityOK)
        #expect(r.clientActivity.events[.selwakeup] == 2 * 200)
        #expect(r.serverActivity.events[.selwakeup] == 2 * 200)
        #expect((r.clientActivity.events + r.serverActivity.events)[.directWrite] == 0)
    }

    /// Every transport's row carries both sides' scheduling; only the engine's the events;
    /// memcpy (one thread) only the writer's.
    @Test(arguments: [TransportKind.engine, .linuxPipe, .memcpy])
    func rowsCarryTheColumnsTheirTransportHas(kind: TransportKind) throws {
        let r = try StreamWorkload.run(StreamConfig(transport: kind, totalBytes: Self.mib))
        var row = ResultsRow()
        r.record(into: &row)
        #expect(!row.isEmpty("writer_vcsw") && !row.isEmpty("writer_sys_ns"))
        #expect(row.isEmpty("reader_vcsw") == (kind == .memcpy))
        #expect(row.isEmpty(ResultsSchema.eventColumn(.directChunk)) == (kind != .engine))
    }
}
