import CPipeSys
import Glibc
import Testing
@testable import PipeEngine

/// The engine's events, counted per thread: known sequences give the counts the seed's rules
/// say they must (each expected count is derived in its comment, not taken from a run).
@Suite("PipeEvent: what the engine counts")
struct EventTests {
    let K = 1024

    /// Runs `body` on a thread of its own and returns what it returned and the events it made.
    func counted<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> (T, PipeEventCounts) {
        let out = Locked<(T, PipeEventCounts)?>(nil)
        let thread = TestThread {
            let before = PipeEventCounts.thisThread
            let value = try! body()
            out.withLock { $0 = (value, PipeEventCounts.thisThread - before) }
        }
        #expect(thread.join())
        return try #require(out.get)
    }

    @Test func sleepEventsFollowTheWaitMessages() {
        #expect(WaitMessage.allCases.map { PipeEvent.sleep($0).name } == WaitMessage.allCases.map { "sleep_\($0)" })
        #expect(PipeEvent.allCases.count <= Int(PB_EVENT_SLOTS))
        #expect(Set(PipeEvent.allCases.map(\.name)).count == PipeEvent.allCases.count)
        #expect(PipeEvent.counted, "this build counts events")
    }

    /// A 1 MiB write from a page-aligned buffer into a new pipe: pipe_write grows the 16 KiB
    /// buffer to BIG_PIPE_SIZE first (16K -> 32K -> 64K, one pipespace_new: one growth), then
    /// takes the direct path once; pipe_build_write_buffer holds min(iov_len, buffer size)
    /// = 64 KiB at a time, so 1 MiB / 64 KiB = 16 chunks. No interruption: no clone.
    @Test func directWriteOfOneMiBMakesSixteenChunks() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let size = 1 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { buffer.deallocate() }
        for i in 0..<size { buffer.storeBytes(of: UInt8(truncatingIfNeeded: i), toByteOffset: i, as: UInt8.self) }
        let source = UncheckedPointer(buffer)
        let reader = TestThread { _ = try! sys.readExactly(r, size) }
        let (written, events) = try counted { try sys.write(w, source.pointer, size) }
        #expect(reader.join())
        #expect(written == size)
        #expect(events[.directWrite] == 1)
        #expect(events[.directChunk] == 16)
        #expect(events[.resizeGrow] == 1 && events[.resizeShrink] == 0)
        #expect(events[.clone] == 0 && events[.writeSplit] == 0)
        #expect(try sys.bufferSize(r) == 64 * K)
    }

    /// A blocking read on an empty pipe sets WANTR and sleeps in "piperd" once; the write that
    /// ends it leaves the bytes in the buffer: the reader wakes, finds them, and returns
    /// without sleeping again. The writer made the wakeup (WANTR was set), and since
    /// the reader had parked (waited for), that wakeup made a FUTEX_WAKE.
    @Test func blockingReadOnAnEmptyPipeSleepsOnceInPiperd() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let got = Locked<(bytes: [UInt8], events: PipeEventCounts)?>(nil)
        let reader = TestThread {
            let before = PipeEventCounts.thisThread
            let bytes = try! sys.read(r, count: 100)
            got.withLock { $0 = (bytes, PipeEventCounts.thisThread - before) }
        }
        try #require(waitForSleeper(#require(sys.pipeForTesting(r)), .WANTR, parked: true))
        let (_, writer) = try counted { try sys.write(w, pattern(0..<100)) }
        #expect(reader.join())
        let (bytes, events) = try #require(got.get)
        #expect(bytes == pattern(0..<100))
        #expect(events[.sleepPiperd] == 1)
        #expect(events.sleeps == 1)
        #expect(events[.sleepParked] == 1 && events[.sleepSpun] == 0)
        #expect(writer[.wakeup] == 1 && writer[.wakeupFutex] == 1)
        #expect(writer.sleeps == 0)
    }

    /// Buffered writes and reads in one thread, below pipe_mindirect (so no direct path), in
    /// the 16 KiB buffer: 6000 + 6000 bytes (in = 12000), a read of 7000 (cnt 5000, out 7000:
    /// not empty, so the pointers stay), then 6000 more: 4384 bytes fit before the end, so the
    /// segment wraps: one split. pipeselwakeup: once per write that leaves bytes in the buffer
    /// (3), once per read that read something and leaves at least PIPE_BUF free (1).
    @Test func wrappedBufferedWriteIsCountedAsASplit() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        let (steps, events) = try counted { () throws -> [Bool] in
            [try sys.write(w, pattern(0..<6000)) == 6000,
             try sys.write(w, pattern(6000..<12000)) == 6000,
             try sys.read(r, count: 7000) == pattern(0..<7000),
             try sys.write(w, pattern(12000..<18000)) == 6000]
        }
        #expect(steps == [true, true, true, true])
        #expect(events[.writeSplit] == 1)
        #expect(events[.selwakeup] == 4)
        #expect(events[.directWrite] == 0 && events[.directChunk] == 0)
        #expect(events.sleeps == 0 && events[.resizeGrow] == 0)
        #expect(try sys.read(r, count: 20_000) == pattern(7000..<18000))
    }

    /// maxpipekva 64 KiB: a pipe (16K + 4K), two more (16K + 4K, then 4K + 4K above half:
    /// 48K), then one more (56K > 3/4 = 48K). The next write on the first pipe, with at most
    /// SMALL_PIPE_SIZE bytes queued, shrinks its buffer to SMALL_PIPE_SIZE: one resize, a
    /// shrink (the KVA rule), no growth; the arena allocated once for it (the new 4K buffer)
    /// and made at least one host call (its freed 16K go back).
    @Test func resizeUnderTheKVATierIsAShrink() throws {
        let sys = try quietSystem(smallKVAConfiguration())
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        _ = try sys.pipe2()
        _ = try sys.pipe2()
        _ = try sys.write(w, pattern(0..<100))
        _ = try sys.pipe2()
        let (_, events) = try counted { try sys.write(w, pattern(100..<200)) }
        #expect(events[.resizeShrink] == 1 && events[.resizeGrow] == 0 && events[.resizeFail] == 0)
        #expect(events[.arenaAllocate] == 1)
        #expect(events[.arenaHostCall] >= 1)
        #expect(try sys.bufferSize(r) == 4 * K)
        #expect(try sys.read(r, count: 1000) == pattern(0..<200))
    }

    /// The counts are the calling thread's: another thread's events never show in them.
    @Test func countsArePerThread() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        let before = PipeEventCounts.thisThread
        let (_, other) = try counted { try sys.write(w, pattern(0..<100)) }
        #expect(other[.selwakeup] == 1)
        #expect(PipeEventCounts.thisThread - before == PipeEventCounts())
        _ = try sys.read(r, count: 100)
        #expect((PipeEventCounts.thisThread - before)[.selwakeup] == 1)
    }
}

/// A raw pointer handed to a test thread (the test keeps the memory alive until it joins).
struct UncheckedPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ p: UnsafeMutableRawPointer) { pointer = p }
}
