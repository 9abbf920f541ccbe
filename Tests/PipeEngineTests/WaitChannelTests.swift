import CPipeSys
import Foundation
import Glibc
import Testing
@testable import PipeEngine

@Suite("msleep: each kind of wait (wmesg) learns its own spin estimate")
struct WaitChannelTests {
    /// A reader's wait for data and a writer's wait for space sleep on the same channel
    /// (`&cpipe`) but last very differently; a long wait of one kind must not move the other's
    /// estimate (a shared estimate made the writer's 20 µs waits park at 64-byte writes).
    @Test func readerAndWriterWaitsKeepSeparateEstimates() throws {
        let sys = try quietSystem()     // default wait strategy: adaptive spin, then park
        let (r, w) = try sys.pipe2()
        let pipe = try #require(sys.pipeForTesting(r))
        #expect(pipe.chan.spinEstimateNanoseconds(.piperd) == 0)
        #expect(pipe.chan.spinEstimateNanoseconds(.pipewr) == 0)

        // A reader waits for data longer than it spins ("piperd").
        let got = Locked<[UInt8]>([])
        let reader = TestThread { let bytes = try! sys.read(r, count: 1); got.withLock { $0 = bytes } }
        try #require(waitForSleeper(pipe, .WANTR, parked: true))   // spun, failed, parked
        _ = try sys.write(w, [42])
        #expect(reader.join())
        #expect(got.get == [42])
        let readWait = pipe.chan.spinEstimateNanoseconds(.piperd)
        #expect(readWait > 0)                                       // the failed spin moved it
        #expect(pipe.chan.spinEstimateNanoseconds(.pipewr) == 0)    // the writer's did not

        // A writer waits for space longer than it spins ("pipewr"): fill the buffer without
        // blocking, then a 100-byte write (atomic: at most PIPE_BUF) must wait for room.
        _ = try sys.fcntl(w, F_SETFL, O_NONBLOCK)
        var filled = 0
        while let n = try? sys.write(w, [UInt8](repeating: 1, count: 100)) { filled += n }
        _ = try sys.fcntl(w, F_SETFL, 0)
        let wrote = Locked<Int>(0)
        let writer = TestThread { let n = try! sys.write(w, [UInt8](repeating: 2, count: 100)); wrote.withLock { $0 = n } }
        try #require(waitForSleeper(pipe, .WANTW, parked: true))
        #expect(wrote.get == 0)
        var drained = 0
        while drained < filled { drained += try sys.read(r, count: filled - drained).count }
        #expect(writer.join())
        #expect(wrote.get == 100)
        #expect(pipe.chan.spinEstimateNanoseconds(.pipewr) > 0)
        #expect(pipe.chan.spinEstimateNanoseconds(.piperd) == readWait)
        #expect(try sys.read(r, count: 200) == [UInt8](repeating: 2, count: 100))
    }
}

@Suite("msleep: no long spins while every CPU has a thread with work")
struct OversubscribedSpinTests {
    /// Short waits spin as before; a wait expected to outlast a park and wake-up parks at once
    /// while the machine is oversubscribed, and spins up to the strategy's maximum otherwise.
    @Test func longWaitsParkAtOnceOnlyWhenOversubscribed() {
        let max = WaitStrategy.spin.maxSpinNanoseconds
        #expect(SpinBudget.nanoseconds(estimate: 0, maxNanoseconds: max, oversubscribed: false) == 2_000)
        #expect(SpinBudget.nanoseconds(estimate: 0, maxNanoseconds: max, oversubscribed: true) == 2_000)
        #expect(SpinBudget.nanoseconds(estimate: 2_500, maxNanoseconds: max, oversubscribed: true) == 5_000)
        #expect(SpinBudget.nanoseconds(estimate: 2_501, maxNanoseconds: max, oversubscribed: true) == 0)
        #expect(SpinBudget.nanoseconds(estimate: 30_000, maxNanoseconds: max, oversubscribed: false) == max)
        #expect(SpinBudget.nanoseconds(estimate: 30_000, maxNanoseconds: max, oversubscribed: true) == 0)
        #expect(SpinBudget.nanoseconds(estimate: 30_000, maxNanoseconds: 1_000, oversubscribed: false) == 1_000)
    }

    /// The sampler is about to wait and the spinners wait already: only the other runnable
    /// threads count against the CPUs.
    @Test func theRuleCountsOnlyThreadsWithWork() {
        // One pair on two CPUs: the other end running, the sampler about to wait.
        #expect(!RunQueueSignal.oversubscribed(runnable: 2, spinning: 0, cpus: 2))
        // The jobserver: two token holders working, five waiters spinning, the sampler.
        #expect(RunQueueSignal.oversubscribed(runnable: 8, spinning: 5, cpus: 2))
        // Many threads, but most of them spinning in the engine: a CPU is free of work.
        #expect(!RunQueueSignal.oversubscribed(runnable: 8, spinning: 6, cpus: 2))
        #expect(RunQueueSignal.oversubscribed(runnable: 17, spinning: 0, cpus: 16))
    }

    /// The kernel's count, read for real: the caller is runnable, and busy threads beyond the
    /// CPUs make the sample find the machine oversubscribed.
    @Test func busyThreadsBeyondTheCPUsAreSeen() {
        #expect(pb_runnable_threads() >= 1)
        let busy = RunQueueSignal.cpus + 1
        // An atomic word, not a lock: a thread blocked on a lock would not be runnable.
        nonisolated(unsafe) let stop = allocateCacheLine(of: UInt32.self)
        defer { UnsafeMutableRawPointer(stop).deallocate() }
        let started = DispatchSemaphore(value: 0)
        let threads = (0..<busy).map { _ in
            TestThread {
                started.signal()
                while pb_load_relaxed_u32(stop) == 0 { pb_cpu_relax() }
            }
        }
        for _ in 0..<busy { started.wait() }
        #expect(RunQueueSignal.sampleNow() == true)
        pb_store_u32(stop, 1)
        for t in threads { #expect(t.join()) }
    }
}
