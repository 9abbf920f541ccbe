import CPipeSys
import Glibc
import Testing
@testable import PipeEngine

/// The KVA tiers with maxpipekva = 64 KiB: half is 32 KiB, three quarters 48 KiB.
@Suite("pipespace_new and the KVA pressure tiers")
struct KVATests {
    let K = 1024

    @Test func newPipesAreSmallAboveHalf() throws {
        let sys = try quietSystem(smallKVAConfiguration())
        let p1 = try sys.pipe2()                       // pipekva 0 -> 16K + 4K
        #expect(try sys.bufferSize(p1.0) == 16 * K)
        let p2 = try sys.pipe2()                       // 20K <= 32K -> 16K + 4K
        #expect(try sys.bufferSize(p2.0) == 16 * K)
        #expect(sys.pipekva == 40 * K)
        let p3 = try sys.pipe2()                       // 40K > 32K -> 4K + 4K
        #expect(try sys.bufferSize(p3.0) == 4 * K)
        #expect(try sys.bufferSize(p3.1) == 4 * K)
        #expect(sys.pipekva == 48 * K)
    }

    @Test func pipesGrowOnlyBelowHalf() throws {
        let sys = try quietSystem(smallKVAConfiguration())
        let (r, w) = try sys.pipe2(O_NONBLOCK)         // 20K in use
        _ = try sys.write(w, pattern(0..<20_000))      // 16K -> 32K: 36K in use
        #expect(try sys.bufferSize(r) == 32 * K)
        _ = try sys.read(r, count: 20_000)
        let (r2, w2) = try sys.pipe2(O_NONBLOCK)       // 36K > 32K: small pair, 44K
        #expect(try sys.bufferSize(r2) == 4 * K)
        #expect(try sys.write(w2, pattern(0..<20_000)) == 4 * K)   // no growth above 1/2
        #expect(try sys.bufferSize(r2) == 4 * K)
        #expect(try sys.write(w, pattern(0..<40_000)) == 32 * K)   // nor for the big one
        #expect(try sys.bufferSize(r) == 32 * K)
        #expect(try sys.sysctl("kern.ipc.piperesizefail") == 0)
    }

    @Test func pipesShrinkAboveThreeQuarters() throws {
        let sys = try quietSystem(smallKVAConfiguration())
        let (r, w) = try sys.pipe2(O_NONBLOCK)         // 16K + 4K
        _ = try sys.pipe2()                            // 16K + 4K: 40K
        _ = try sys.pipe2()                            // 4K + 4K: 48K (not > 3/4 yet)
        _ = try sys.write(w, pattern(0..<100))
        #expect(try sys.bufferSize(r) == 16 * K)       // 48K is not > 48K
        _ = try sys.pipe2()                            // 56K > 48K
        // The next write sees pipekva > 3/4 with cnt <= SMALL_PIPE_SIZE: shrink to 4K,
        // keeping the 100 bytes already queued.
        _ = try sys.write(w, pattern(100..<200))
        #expect(try sys.bufferSize(r) == 4 * K)
        #expect(sys.pipekva == 44 * K)
        #expect(try sys.read(r, count: 1000) == pattern(0..<200))
    }

    @Test func readShrinksAboveThreeQuartersAndFailureKeepsTheData() throws {
        let sys = try quietSystem(smallKVAConfiguration())
        let (r, w) = try sys.pipe2(O_NONBLOCK)         // 20K
        _ = try sys.write(w, pattern(0..<3000))
        let others = [try sys.pipe2(), try sys.pipe2(), try sys.pipe2(), try sys.pipe2()]
        #expect(sys.pipekva == 64 * K)                  // 20 + 20 + 8 + 8 + 8: full
        // pipe_read wants to shrink (pipekva > 3/4, cnt <= 4K) but the arena is full:
        // piperesizefail, and the old buffer keeps its data.
        #expect(try sys.read(r, count: 1000) == pattern(0..<1000))
        #expect(try sys.sysctl("kern.ipc.piperesizefail") == 1)
        #expect(try sys.bufferSize(r) == 16 * K)
        try sys.close(others[3].0)                      // 4K free: now the shrink fits
        try sys.close(others[3].1)
        #expect(try sys.read(r, count: 1000) == pattern(1000..<2000))
        #expect(try sys.bufferSize(r) == 4 * K)
        #expect(try sys.read(r, count: 5000) == pattern(2000..<3000))
    }

    @Test func exhaustedArenaFailsPipeCreationWithENOMEM() throws {
        let messages = Locked<[String]>([])
        let sys = try quietSystem(smallKVAConfiguration(), log: messages)
        var pipes: [(Int32, Int32)] = []
        for _ in 0..<5 { pipes.append(try sys.pipe2()) }  // 20 + 20 + 8 + 8 + 8 = 64K
        #expect(sys.pipekva == 64 * K)
        let descriptors = sys.openDescriptors
        let start = pb_monotonic_ns()
        expectErrno(.noMemory) { try sys.pipe2() }
        expectErrno(.noMemory) { try sys.pipe2() }
        let apart = pb_monotonic_ns() - start
        #expect(try sys.sysctl("kern.ipc.pipeallocfail") == 2)
        #expect(sys.openDescriptors == descriptors)
        #expect(sys.pipekva == 64 * K)
        // The console message is rate-limited to once a second: the second failure is silent
        // unless a stalled machine put a second between the two.
        let message = "kern.ipc.maxpipekva exceeded; see tuning(7)"
        if apart < 1_000_000_000 {
            #expect(messages.get == [message])
            #expect(sys.suppressedMessages == 1)
        } else {
            #expect(messages.get.allSatisfy { $0 == message })
            #expect(messages.get.count + sys.suppressedMessages == 2)
        }
        // Room for a forward buffer but not the reverse one: the forward one is given back.
        try sys.close(pipes[4].0)
        expectErrno(.noMemory) { try sys.pipe2() }
        #expect(sys.pipekva == 60 * K)
        #expect(try sys.sysctl("kern.ipc.pipeallocfail") == 3)
    }

    /// First-fit fragments: with half the arena free in 12 KiB holes, a 16 KiB forward
    /// buffer does not fit, so pipespace_new retries at SMALL_PIPE_SIZE (pipefragretry).
    @Test func fragmentationDrivesFragRetry() throws {
        let sys = try quietSystem(smallKVAConfiguration())
        let p1 = try sys.pipe2()                       // [0,16) [16,20)
        let p2 = try sys.pipe2()                       // [20,36) [36,40)
        let p3 = try sys.pipe2()                       // [40,44) [44,48)
        let p4 = try sys.pipe2()                       // [48,52) [52,56)
        let p5 = try sys.pipe2()                       // [56,60) [60,64)
        #expect(sys.pipekva == 64 * K)
        try sys.close(p5.0); try sys.close(p5.1)       // free [56,64): 56K > 48K
        // A read on p1's forward end shrinks it (first fit: [56,60)), freeing [0,16).
        expectErrno(.wouldBlock) { try sys.fcntl(p1.0, F_SETFL, O_NONBLOCK); return try sys.read(p1.0, count: 1) }
        #expect(try sys.bufferSize(p1.0) == 4 * K)
        let p6 = try sys.pipe2()                       // 44K > 32K: [0,4) [4,8)
        try sys.close(p3.0); try sys.close(p3.1)       // free [40,48)
        try sys.close(p1.0)                            // free [56,60) -> [56,64)
        try sys.close(p4.1)                            // free [52,56) -> [52,64)
        try sys.close(p6.1)                            // free [4,8) -> [4,16)
        #expect(sys.pipekva == 32 * K)                 // p6f 4 + p1r 4 + p2 20 + p4f 4
        let holes = sys.arenaFreeExtents.map { $0.bytes }
        #expect(holes == [12 * K, 8 * K, 12 * K])
        let retriesBefore = try sys.sysctl("kern.ipc.pipefragretry")
        let p7 = try sys.pipe2()                       // 32K is not > 32K: asks for 16K
        #expect(try sys.sysctl("kern.ipc.pipefragretry") == retriesBefore + 1)
        #expect(try sys.bufferSize(p7.0) == 4 * K)
        #expect(try sys.sysctl("kern.ipc.pipeallocfail") == 0)
        _ = (p2, p4)
    }

    @Test func resizeFailureKeepsOldBufferAndData() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        _ = try sys.write(w, pattern(0..<1000))
        sys.injectArenaFailures { bytes in bytes > 16 * 1024 }
        // Wants 64K: the allocation fails, the write goes on in the old 16K buffer.
        #expect(try sys.write(w, pattern(1000..<41_000)) == 16 * 1024 - 1000)
        #expect(try sys.sysctl("kern.ipc.piperesizefail") == 1)
        #expect(try sys.bufferSize(r) == 16 * 1024)
        sys.injectArenaFailures(nil)
        #expect(try sys.readExactly(r, 16 * 1024) == pattern(0..<16 * 1024))
    }

    @Test func resizingCanBeDisabled() throws {
        let sys = try quietSystem(smallKVAConfiguration())
        try sys.sysctl("kern.ipc.piperesizeallowed", set: 0)
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        #expect(try sys.write(w, pattern(0..<20_000)) == 16 * K)
        #expect(try sys.bufferSize(r) == 16 * K)
        try sys.sysctl("kern.ipc.piperesizeallowed", set: 1)
        _ = try sys.read(r, count: 20_000)
        #expect(try sys.write(w, pattern(0..<20_000)) == 20_000)
        #expect(try sys.bufferSize(r) == 32 * K)
    }

    @Test func everythingIsGivenBackAfterClose() throws {
        let sys = try quietSystem(smallKVAConfiguration(1 << 20))
        var fds: [Int32] = []
        for i in 0..<30 {
            let (r, w) = try sys.pipe2(O_NONBLOCK)
            _ = try sys.write(w, pattern(0..<(i * 2000)))
            _ = try sys.write(r, pattern(0..<(i * 300)))
            fds += [r, w]
        }
        #expect(sys.pipekva > 0)
        for fd in fds.shuffled() { try sys.close(fd) }
        #expect(sys.pipekva == 0)
        #expect(sys.arenaAllocatedBytes == 0)
        #expect(sys.arenaFreeExtents.count == 1 && sys.arenaFreeExtents[0].bytes == 1 << 20)
        #expect(try sys.sysctl("engine.pipes") == 0)
        #expect(sys.openDescriptors == 0)
    }

    /// Without the page cache, freed buffers go back to PROT_NONE at once: the arena's memory
    /// is really released.
    @Test func freedBuffersAreReturnedToTheKernel() throws {
        var config = smallKVAConfiguration()
        config.arenaCacheBytes = 0
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, pattern(0..<1000))
        try sys.close(r); try sys.close(w)
        let base = sys.kernel.arena.base
        // mincore says nothing is resident after MADV_DONTNEED.
        var vec = [UInt8](repeating: 1, count: 16)
        #expect(mincore(base, 64 * 1024, &vec) == 0)
        #expect(vec.allSatisfy { $0 & 1 == 0 })
        #expect(try sys.sysctl("engine.arena_cached") == 0)
    }

    /// With the page cache, freed pages stay resident up to its size and are reused in place;
    /// past it, every cached page goes back. Placement and accounting do not change.
    @Test func arenaPageCacheKeepsFreedPagesUpToItsSize() throws {
        var config = smallKVAConfiguration(256 * 1024)
        config.arenaCacheBytes = 32 * 1024
        let sys = try quietSystem(config)
        let base = sys.kernel.arena.base
        func resident() -> Int {
            var vec = [UInt8](repeating: 0, count: 64)
            #expect(mincore(base, 256 * 1024, &vec) == 0)
            return vec.filter { $0 & 1 != 0 }.count
        }
        // 16 KiB + 4 KiB at the bottom of the arena; non-blocking, so that the writes fill
        // the buffers (a blocking 16 KiB write would take the direct path).
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        _ = try sys.write(w, pattern(0..<16384))
        _ = try sys.write(r, pattern(0..<4096))
        let extentsOpen = sys.arenaFreeExtents.map(\.offset)
        try sys.close(r); try sys.close(w)
        #expect(try sys.sysctl("engine.arena_cached") == 20 * 1024)
        #expect(resident() == 5)
        #expect(sys.pipekva == 0 && sys.arenaFreeExtents.count == 1)
        // The next pair lands on the same pages (first fit), which are still writable.
        let (r2, w2) = try sys.pipe2()
        #expect(sys.arenaFreeExtents.map(\.offset) == extentsOpen)
        #expect(try sys.sysctl("engine.arena_cached") == 0)
        _ = try sys.write(w2, pattern(0..<100))
        #expect(try sys.read(r2, count: 100) == pattern(0..<100))
        // A second pair: its 16 KiB buffer freed on top of 20 KiB cached is over the 32 KiB
        // cache, so all 36 KiB go back; then its 4 KiB reverse buffer is cached.
        let (r3, w3) = try sys.pipe2()
        try sys.close(r2); try sys.close(w2)
        #expect(try sys.sysctl("engine.arena_cached") == 20 * 1024)
        try sys.close(r3); try sys.close(w3)
        #expect(try sys.sysctl("engine.arena_cached") == 4 * 1024)
        #expect(resident() == 0)   // that 4 KiB buffer was never written
        #expect(sys.pipekva == 0 && sys.arenaFreeExtents.count == 1)
    }
}
