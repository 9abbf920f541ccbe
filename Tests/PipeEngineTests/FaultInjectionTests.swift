import Foundation
import Glibc
import Testing
@testable import PipeEngine

/// Faults injected on a schedule take the path a real failure takes: the errno FreeBSD
/// gives, counters right, no data lost, nothing leaked.
@Suite("fault injection: arena, page holds, mlock")
struct FaultInjectionTests {
    @Test func arenaFaultsOnPipeCreation() throws {
        let sys = try quietSystem()
        // The forward buffer's mprotect is refused, as the host refuses it at vm.max_map_count:
        // ENOMEM, counted apart from the seed's "no room" (no pipefragretry, no pipeallocfail).
        sys.injectFaults(.once(at: .arenaProtect))
        expectErrno(.noMemory) { try sys.pipe2() }
        #expect(try sys.sysctl("engine.host_map_refusals") == 1)
        #expect(try sys.sysctl("kern.ipc.pipefragretry") == 0)
        #expect(try sys.sysctl("kern.ipc.pipeallocfail") == 0)
        #expect(sys.injectedFaults(at: .arenaProtect) == 1)
        #expect(sys.pipekva == 0 && sys.openDescriptors == 0)
        // The fragmentation retry: a 16 KiB request that finds no room retries at SMALL_PIPE_SIZE.
        sys.injectFaults(.once(at: .arenaAllocate))
        let (r, w) = try sys.pipe2()
        #expect(try sys.sysctl("kern.ipc.pipefragretry") == 1)
        #expect(try sys.bufferSize(r) == SMALL_PIPE_SIZE_DEFAULT)
        // Every allocation fails: ENOMEM, pipeallocfail, and nothing left allocated.
        let before = sys.pipekva
        sys.injectFaults(FaultSchedule { point, _, _ in point == .arenaAllocate })
        expectErrno(.noMemory) { try sys.pipe2() }
        #expect(try sys.sysctl("kern.ipc.pipeallocfail") == 1)
        #expect(sys.pipekva == before && sys.openDescriptors == 2)
        // The reverse buffer's allocation fails after the forward one succeeded: the forward
        // buffer is given back (pipe_paircreate's failure path).
        sys.injectFaults(.once(at: .arenaAllocate, occurrence: 1))
        expectErrno(.noMemory) { try sys.pipe2() }
        #expect(sys.pipekva == before)
        sys.injectFaults(nil)
        try sys.close(r); try sys.close(w)
        #expect(sys.pipekva == 0 && sys.arenaFreeExtents.count == 1)
    }

    @Test func holdFaultIsEFAULTWithNothingMoved() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        sys.injectFaults(.once(at: .pageHold))
        expectErrno(.badAddress) { try sys.write(w, pattern(0..<65536)) }
        #expect(try sys.bytesReadable(r) == 0)
        #expect(sys.heldPages == 0)
        #expect(sys.injectedFaults(at: .pageHold) == 1)
        // The next write goes through.
        let writer = TestThread { _ = try! sys.write(w, pattern(0..<65536)) }
        #expect(try sys.readExactly(r, 65536) == pattern(0..<65536))
        #expect(writer.join())
    }

    @Test func refusedMlockFallsBackToPopulate() throws {
        var config = PipeConfiguration()
        config.hold = .mlock
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        sys.injectFaults(FaultSchedule { point, _, _ in point == .pageLock })
        let writer = TestThread { _ = try! sys.write(w, pattern(0..<200_000)) }
        #expect(try sys.readExactly(r, 200_000) == pattern(0..<200_000))
        #expect(writer.join())
        #expect(try sys.sysctl("engine.hold_fallbacks") == sys.injectedFaults(at: .pageLock))
        #expect(try sys.sysctl("engine.hold_fallbacks") >= 3)
        #expect(sys.heldPages == 0)
    }

    /// Random schedules at every point while a writer streams through direct and buffered
    /// writes, and pipes come and go around it under KVA pressure: every byte a write
    /// accepted arrives once, in order; nothing leaks.
    @Test func randomFaultSchedulesLoseNothing() throws {
        var injectedTotal = 0
        for seed in UInt64(1)...40 {
            // Buffers of at most 16 KiB and pipe_mindirect = 16 KiB, writes of at most 16 KiB:
            // a direct write is then one held chunk, so an injected hold failure (EFAULT, which
            // carries no count, as in FreeBSD) always means that nothing of that write moved.
            var config = smallKVAConfiguration(256 * 1024)
            config.bigPipeSize = 16 * 1024
            config.pipeMindirect = 16 * 1024
            config.hold = seed % 2 == 0 ? .mlock : .populate
            let sys = try quietSystem(config)
            let (r, w) = try sys.pipe2()
            sys.injectFaults(.random(seed: seed, probability: 0.15))
            let source = pattern(0..<(1 << 20), seed: UInt8(seed))
            let accepted = Locked(0)
            let writer = TestThread {
                var rng = SplitMix64(seed: seed)
                var sent = 0
                source.withUnsafeBytes { src in
                    while sent < 4 << 20 {
                        let size = rng.below(4) == 0 ? 16 * 1024 : 1 + rng.below(16 * 1024)
                        let offset = sent % (1 << 20)
                        let n = min(size, (1 << 20) - offset)
                        do {
                            sent += try sys.write(w, src.baseAddress! + offset, n)
                            accepted.withLock { $0 = sent }
                        } catch {
                            precondition(error as? Errno == .badAddress, "unexpected \(error)")
                        }
                    }
                }
                try! sys.close(w)
            }
            // Pipes created and closed meanwhile, through the injected allocation failures.
            var extra: [(Int32, Int32)] = []
            var received = 0
            var buffer = [UInt8](repeating: 0, count: 70_000)
            var mismatch = false
            while true {
                let n = try buffer.withUnsafeMutableBytes { try sys.read(r, $0.baseAddress, $0.count) }
                if n == 0 { break }
                for i in 0..<n where buffer[i] != source[(received + i) % (1 << 20)] { mismatch = true }
                received += n
                if let p = try? sys.pipe2(O_NONBLOCK) { extra.append(p) }
                if extra.count > 6, let p = extra.first {
                    try sys.close(p.0); try sys.close(p.1)
                    extra.removeFirst()
                }
            }
            #expect(writer.join(timeout: 60))
            #expect(!mismatch)
            #expect(received == accepted.get)
            for p in extra { try sys.close(p.0); try sys.close(p.1) }
            try sys.close(r)
            injectedTotal += FaultPoint.allCases.reduce(0) { $0 + sys.injectedFaults(at: $1) }
            #expect(sys.pipekva == 0)
            #expect(sys.arenaFreeExtents.count == 1)
            #expect(sys.heldPages == 0)
            #expect(try sys.sysctl("engine.pipes") == 0)
        }
        print("fault injection: \(injectedTotal) faults injected over 40 schedules, 0 bytes lost")
        #expect(injectedTotal > 100)
    }
}

private let SMALL_PIPE_SIZE_DEFAULT = DEFAULT_SMALL_PIPE_SIZE
