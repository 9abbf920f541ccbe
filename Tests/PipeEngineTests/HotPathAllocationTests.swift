import CMallocCounter
import Glibc
import Testing
@testable import PipeEngine

/// The hot path allocates nothing: `read` and `write` in steady state make no heap
/// allocation (counted per thread by a malloc interposer in the test process).
@Suite("hot path: zero heap allocations per read/write")
struct HotPathAllocationTests {
    @Test(.enabled(if: pb_malloc_counting_available(), "malloc is the sanitizer's"))
    func bufferedReadWriteAllocateNothing() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        let out = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        let inp = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        defer { out.deallocate(); inp.deallocate() }
        memset(out, 0x5A, 4096)
        func round() throws {
            _ = try sys.write(w, out, 100)
            _ = try sys.read(r, inp, 4096)
            _ = try sys.write(w, out, 4096)
            _ = try sys.read(r, inp, 4096)
            _ = try sys.write(r, out, 512)        // the reverse direction too
            _ = try sys.read(w, inp, 512)
            var iov = (iovec(iov_base: out, iov_len: 100), iovec(iov_base: out + 100, iov_len: 300))
            _ = try withUnsafePointer(to: &iov) { p in               // vectored, too
                try p.withMemoryRebound(to: iovec.self, capacity: 2) { try sys.writev(w, $0, 2) }
            }
            _ = try sys.read(r, inp, 4096)
        }
        for _ in 0..<100 { try round() }          // warm-up: first-use allocations happen here
        let before = pb_thread_malloc_count()
        for _ in 0..<10_000 { try round() }
        #expect(pb_thread_malloc_count() - before == 0)
        // And the counter does count: an Array allocation is seen.
        let probe = pb_thread_malloc_count()
        let array = [UInt8](repeating: 1, count: Int(probe % 7) + 1000)
        #expect(pb_thread_malloc_count() > probe && array.count >= 1000)
    }

    @Test(.enabled(if: pb_malloc_counting_available(), "malloc is the sanitizer's"))
    func directAndBlockingTransfersAllocateNothing() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let size = 256 * 1024
        let chunks = 400
        let writerCount = Locked<UInt64>(0)
        let writer = TestThread {
            let src = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
            memset(src, 0x33, size)
            for _ in 0..<20 { _ = try! sys.write(w, src, size) }
            let before = pb_thread_malloc_count()
            for _ in 0..<chunks { _ = try! sys.write(w, src, size) }
            writerCount.withLock { $0 = pb_thread_malloc_count() - before }
            src.deallocate()
        }
        let dst = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
        defer { dst.deallocate() }
        var got = 0
        while got < 20 * size { got += try sys.read(r, dst, size) }
        let before = pb_thread_malloc_count()
        while got < (20 + chunks) * size { got += try sys.read(r, dst, size) }
        let readerAllocations = pb_thread_malloc_count() - before
        #expect(writer.join())
        #expect(readerAllocations == 0)
        #expect(writerCount.get == 0)
        #expect(try sys.sysctl("engine.direct_writes") > 0)
    }

    /// `kevent` into the caller's event buffer, as the system call takes it, on a ready pipe:
    /// the events come back (level-triggered, the same each time, as the array form gives
    /// them) and nothing is allocated. (The array form allocates its result.)
    @Test(.enabled(if: pb_malloc_counting_available(), "malloc is the sanitizer's"))
    func keventIntoABufferAllocatesNothing() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        let kq = try sys.kqueue()
        _ = try sys.kevent(kq, changes: [Kevent(ident: UInt(r), filter: Kevent.EVFILT_READ, flags: Kevent.EV_ADD),
                                         Kevent(ident: UInt(w), filter: Kevent.EVFILT_WRITE, flags: Kevent.EV_ADD)],
                           capacity: 0, timeout: 0)
        var byte: UInt8 = 1
        _ = try sys.write(w, &byte, 1)
        let expected = try sys.kevent(kq, changes: [], capacity: 4, timeout: 0)
        #expect(Set(expected.map { $0.filter }) == [Kevent.EVFILT_READ, Kevent.EVFILT_WRITE])
        let events = UnsafeMutableBufferPointer<Kevent>.allocate(capacity: 4)
        defer { events.deallocate() }
        let none = UnsafeBufferPointer<Kevent>(start: nil, count: 0)
        var matches = true
        for _ in 0..<10 { _ = try sys.kevent(kq, changes: none, events: events, timeout: 0) }   // warm-up
        let before = pb_thread_malloc_count()
        var counts = 0
        for _ in 0..<1_000 { counts += try sys.kevent(kq, changes: none, events: events, timeout: 0) }
        #expect(pb_thread_malloc_count() - before == 0)
        for i in 0..<expected.count {
            matches = matches && events[i].ident == expected[i].ident && events[i].filter == expected[i].filter
                && events[i].data == expected[i].data
        }
        #expect(counts == 1_000 * expected.count)
        #expect(matches)
        try sys.close(kq); try sys.close(r); try sys.close(w)
    }
}
