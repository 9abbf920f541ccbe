import CMallocCounter
import Foundation
import Glibc
import Testing
@testable import PipeEngine

/// Stress: many writers and readers, atomic and non-atomic writes, direct and buffered,
/// random interruptions and closes — and a soak that creates and destroys pipes by the
/// hundred thousand with flat memory. Every wait is bounded.
@Suite("stress and soak")
struct StressTests {
    /// A 512-byte record: writer id, sequence number, and a body derived from both.
    static func record(writer: Int, seq: Int) -> [UInt8] {
        var r = [UInt8](repeating: 0, count: PIPE_BUF)
        r[0] = UInt8(writer)
        withUnsafeBytes(of: UInt32(seq).littleEndian) { for i in 0..<4 { r[1 + i] = $0[i] } }
        for i in 5..<PIPE_BUF { r[i] = UInt8(truncatingIfNeeded: writer &* 31 &+ seq &* 7 &+ i) }
        return r
    }

    /// Several writers share each pipe with PIPE_BUF-sized (atomic) records while other pipes
    /// carry one large-write stream each (direct and buffered); a third thread interrupts
    /// everyone at random, and some readers close early. Checked: no record torn, none lost
    /// while the reader was there, none twice, each writer's records in order.
    @Test func sharedPipesUnderInterruptionsAndCloses() throws {
        let sys = try quietSystem()
        let pipes = 4, writersPerPipe = 3, recordsPerWriter = 1500
        var threads: [TestThread] = []
        var engineThreads: [EngineThread] = []
        let problems = Locked<[String]>([])
        let acceptedRecords = Locked([Int](repeating: 0, count: pipes * writersPerPipe))
        let stop = Locked(false)
        for p in 0..<pipes {
            let (r, w) = try sys.pipe2()
            let closesEarly = p == pipes - 1          // this pipe's reader leaves half-way
            var writers: [TestThread] = []
            for k in 0..<writersPerPipe {
                let id = p * writersPerPipe + k
                writers.append(TestThread {
                    for seq in 0..<recordsPerWriter {
                        let rec = Self.record(writer: id, seq: seq)
                        var done = false
                        while !done {
                            do {
                                let n = try sys.write(w, rec)
                                if n != PIPE_BUF { problems.withLock { $0.append("short atomic write \(n)") } }
                                done = true
                            } catch Errno.interrupted {
                                continue                        // nothing moved: retry
                            } catch Errno.brokenPipe {
                                return                          // the reader left
                            } catch {
                                problems.withLock { $0.append("writer \(id): \(error)") }
                                return
                            }
                        }
                        acceptedRecords.withLock { $0[id] = seq + 1 }
                    }
                })
            }
            let reader = TestThread {
                var pending: [UInt8] = []
                var next = [Int](repeating: 0, count: writersPerPipe)
                var total = 0
                let limit = closesEarly ? recordsPerWriter * writersPerPipe / 2 : Int.max
                while total < limit {
                    let chunk: [UInt8]
                    do { chunk = try sys.read(r, count: 7000) } catch Errno.interrupted { continue } catch {
                        problems.withLock { $0.append("reader: \(error)") }
                        return
                    }
                    if chunk.isEmpty { break }
                    pending += chunk
                    while pending.count >= PIPE_BUF {
                        let rec = Array(pending[0..<PIPE_BUF])
                        pending.removeFirst(PIPE_BUF)
                        let id = Int(rec[0])
                        let seq = rec[1..<5].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
                        let k = id - p * writersPerPipe
                        guard k >= 0, k < writersPerPipe, rec == Self.record(writer: id, seq: seq) else {
                            problems.withLock { $0.append("torn or foreign record on pipe \(p)") }
                            return
                        }
                        if seq != next[k] { problems.withLock { $0.append("writer \(id): got \(seq), expected \(next[k])") } }
                        next[k] = seq + 1
                        total += 1
                    }
                }
                try? sys.close(r)
                if !closesEarly {
                    let accepted = acceptedRecords.get
                    for k in 0..<writersPerPipe where next[k] != accepted[p * writersPerPipe + k] {
                        problems.withLock { $0.append("writer \(p * writersPerPipe + k): read \(next[k]) of \(accepted[p * writersPerPipe + k]) accepted") }
                    }
                }
            }
            threads += writers
            engineThreads += writers.compactMap(\.engineThread)
            // The write end closes once its writers are done, so the reader sees EOF.
            let group = writers
            threads.append(TestThread {
                for t in group { t.join(timeout: 120) }
                try? sys.close(w)
            })
            threads.append(reader)
            engineThreads.append(reader.engineThread!)
        }
        // Single-writer pipes with large writes: direct (64K..1M) and buffered (odd sizes).
        for (index, big) in [true, false].enumerated() {
            let (r, w) = try sys.pipe2()
            let total = 24 << 20
            let source = pattern(0..<(1 << 20), seed: UInt8(index + 40))
            let writer = TestThread {
                var sent = 0
                var rng = SplitMix64(seed: UInt64(index + 7))
                source.withUnsafeBytes { src in
                    while sent < total {
                        let offset = sent % (1 << 20)
                        let want = big ? 65536 + rng.below(1 << 20) : 1 + rng.below(8000)
                        let n = min(want, total - sent, (1 << 20) - offset)
                        do { sent += try sys.write(w, src.baseAddress! + offset, n) } catch Errno.interrupted {} catch {
                            problems.withLock { $0.append("stream writer: \(error)") }
                            return
                        }
                    }
                }
                try? sys.close(w)
            }
            let reader = TestThread {
                var got = 0
                var buf = [UInt8](repeating: 0, count: 100_000)
                while true {
                    let n: Int
                    do { n = try buf.withUnsafeMutableBytes { try sys.read(r, $0.baseAddress, $0.count) } } catch Errno.interrupted { continue } catch {
                        problems.withLock { $0.append("stream reader: \(error)") }
                        return
                    }
                    if n == 0 { break }
                    for i in 0..<n where buf[i] != source[(got + i) % (1 << 20)] {
                        problems.withLock { $0.append("stream \(index): wrong byte at \(got + i)") }
                        return
                    }
                    got += n
                }
                if got != total { problems.withLock { $0.append("stream \(index): \(got) of \(total)") } }
            }
            threads += [writer, reader]
            engineThreads += [writer.engineThread!, reader.engineThread!]
        }
        let targets = engineThreads
        let interrupts = Locked(0)
        let interrupter = TestThread {
            var rng = SplitMix64(seed: 99)
            while !stop.get {
                usleep(UInt32(rng.below(300)))
                targets[rng.below(targets.count)].interrupt(restart: rng.below(2) == 0)
                interrupts.withLock { $0 += 1 }
            }
        }
        for t in threads { #expect(t.join(timeout: 180)) }
        stop.withLock { $0 = true }
        #expect(interrupter.join())
        #expect(problems.get.isEmpty, "\(problems.get.prefix(5))")
        #expect(sys.heldPages == 0)
        print("stress: \(interrupts.get) interruptions, \(pipes * writersPerPipe) record writers, 2 streams, 0 problems")
    }

    /// fget takes no lock (`fget_unlocked`): reads and writes on descriptors that another thread
    /// keeps closing and reusing get EBADF, or a file that was in the slot during the call —
    /// never a crash, a stray reference or a file left unclosed.
    @Test func lockFreeFgetRacesCloseAndDescriptorReuse() throws {
        let sys = try quietSystem()
        let stop = Locked(false)
        let problems = Locked<[String]>([])
        let moved = Locked(0)
        let users = (0..<2).map { _ in
            TestThread {
                var byte: UInt8 = 7
                var n = 0
                while !stop.get {
                    for fd in Int32(0)..<6 {
                        do {
                            n += try sys.write(fd, &byte, 1)
                            n += try sys.read(fd, &byte, 1)
                        } catch .badFileDescriptor, .wouldBlock, .brokenPipe {
                        } catch {
                            problems.withLock { $0.append("fd \(fd): \(error)") }
                        }
                    }
                }
                moved.withLock { $0 += n }
            }
        }
        let cycles = pb_sanitized_build() ? 2_000 : 20_000
        var rng = SplitMix64(seed: 7)
        for _ in 0..<cycles {
            let (r, w) = try sys.pipe2(O_NONBLOCK)
            if rng.next() & 1 == 0 {
                try sys.close(r); try sys.close(w)
            } else {
                try sys.close(w); try sys.close(r)
            }
        }
        stop.withLock { $0 = true }
        for t in users { #expect(t.join()) }
        #expect(problems.get.isEmpty, "\(problems.get.prefix(5))")
        #expect(sys.openDescriptors == 0)
        #expect(try sys.sysctl("engine.pipes") == 0)
        #expect(sys.pipekva == 0)
        print("fget race: \(cycles) pipes created and closed under 2 threads, \(moved.get) bytes moved meanwhile")
    }

    /// Creates and destroys pipes (with a byte in each direction) by the hundred thousand:
    /// memory stays flat and nothing is left. PIPEBENCH_SOAK_PIPES sets the count.
    @Test func soakCreatesAndDestroysPipesWithFlatMemory() throws {
        let count = ProcessInfo.processInfo.environment["PIPEBENCH_SOAK_PIPES"].flatMap(Int.init) ?? 100_000
        let sys = try quietSystem()
        func residentKiB() -> Int {
            guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
            return (Int(statm.split(separator: " ")[1]) ?? 0) * 4
        }
        var one: UInt8 = 1
        func cycle() throws {
            let (r, w) = try sys.pipe2(O_NONBLOCK)
            _ = try sys.write(w, &one, 1)
            _ = try sys.write(r, &one, 1)
            try sys.close(r)
            try sys.close(w)
        }
        for _ in 0..<min(20_000, count) { try cycle() }        // warm-up: allocator, arena pages
        // What this thread's pipes hold on the heap (the process's resident size is shared with
        // every suite running beside this one, so it is reported, not asserted).
        let heapBefore = pb_thread_net_heap_bytes()
        let before = residentKiB()
        for _ in 0..<count { try cycle() }
        let after = residentKiB()
        let heapGrowth = pb_thread_net_heap_bytes() - heapBefore
        #expect(sys.pipekva == 0)
        #expect(sys.arenaFreeExtents.count == 1)
        #expect(try sys.sysctl("engine.pipes") == 0)
        #expect(sys.openDescriptors == 0)
        if pb_malloc_counting_available() {
            #expect(heapGrowth < 64 * 1024, "the heap grew by \(heapGrowth) bytes over \(count) pipes")
        }
        // The arena's pages went back to the kernel, but for the page cache's few.
        let arena = sys.arenaRange
        var resident = [UInt8](repeating: 0, count: arena.count / PAGE_SIZE)
        #expect(mincore(arena.baseAddress, arena.count, &resident) == 0)
        let residentPages = resident.filter { $0 & 1 != 0 }.count
        let cached = try sys.sysctl("engine.arena_cached")
        #expect(residentPages * PAGE_SIZE <= cached && cached <= sys.configuration.arenaCacheBytes)
        print("soak: \(count) pipes created and destroyed, heap growth \(heapGrowth) B on this thread, "
              + "process resident \(before) -> \(after) KiB")
    }
}
