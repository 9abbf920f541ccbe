import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// Carries a value that is not `Sendable` to another thread when the code that does so
/// guarantees exclusive or properly ordered access by hand — here, a `ByteChannel`, whose
/// contract is one writer thread and one reader thread.
struct Unchecked<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A pthread running one closure, optionally pinned to one CPU, whose result `join` returns.
///
/// We use pthreads, not Swift concurrency tasks: tasks run on a shared pool whose threads we
/// must not pin, and a benchmark needs to know which CPU each side runs on.
final class WorkerThread<Result: Sendable>: @unchecked Sendable {
    // Written by the worker before it exits, read by the joiner after pthread_join returns;
    // pthread_join orders the two, so no further synchronisation is needed.
    private var outcome: Swift.Result<Result, Error>?
    private var thread: pthread_t = 0
    private let body: @Sendable () throws -> Result
    private var joined = false

    private init(body: @escaping @Sendable () throws -> Result) {
        self.body = body
    }

    /// Starts a thread running `body`. Pinning is the body's job (`pinCurrentThread`), so that
    /// a body that fails to pin can still release the peers waiting for it at a barrier.
    static func start(_ body: @escaping @Sendable () throws -> Result) throws -> WorkerThread {
        let worker = WorkerThread(body: body)
        let entry = ThreadEntry { worker.main() }
        let context = Unmanaged.passRetained(entry).toOpaque()
        var tid = pthread_t()
        let r = pthread_create(&tid, nil, threadEntryPoint, context)
        if r != 0 {
            Unmanaged<ThreadEntry>.fromOpaque(context).release()
            throw HarnessError.threadStart(errno: r)
        }
        worker.thread = tid   // read only by join, on this side of the thread's start
        return worker
    }

    private func main() {
        outcome = Swift.Result { try body() }
    }

    /// Waits for the thread and returns its result (or rethrows its error). Call once.
    func join() throws -> Result {
        precondition(!joined, "WorkerThread joined twice")
        joined = true
        let r = pthread_join(thread, nil)
        if r != 0 { throw HarnessError.system(call: "pthread_join", errno: r, context: "") }
        guard let outcome else { throw HarnessError.unsupported("worker thread ended without a result") }
        return try outcome.get()
    }
}

/// What a new pthread runs: a non-generic box, because the C entry point cannot be generic.
private final class ThreadEntry {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

private let threadEntryPoint: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? = { raw in
    Unmanaged<ThreadEntry>.fromOpaque(raw!).takeRetainedValue().run()
    return nil
}

/// Pins the calling thread to `cpu`; nil leaves it free to run anywhere.
func pinCurrentThread(_ cpu: Int?) throws {
    guard let cpu else { return }
    let r = pb_pin_current_thread(Int32(cpu))
    if r != 0 { throw HarnessError.pinning(cpu: cpu, errno: r) }
}

/// A one-shot start barrier for a fixed number of threads, spinning (then yielding) so that
/// all parties leave it within a cache-line transfer of each other, without a sleep/wake-up.
/// A party that failed to get ready (say, to pin itself) still arrives, saying so, and then
/// every party learns that the run is off instead of waiting forever.
/// The counter and the failure flag live on their own 128-byte line.
final class SpinBarrier: @unchecked Sendable {
    // The only mutable state is the two words, accessed with atomics.
    private let word: UnsafeMutablePointer<Int64>
    private let parties: Int64

    init(parties: Int) {
        self.parties = Int64(parties)
        word = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
            .bindMemory(to: Int64.self, capacity: 16)
        word.initialize(repeating: 0, count: 16)
    }

    deinit { UnsafeMutableRawPointer(word).deallocate() }

    /// Arrives without waiting: for a coordinator releasing the parties of threads it could
    /// not start (always with `failed: true`, so that those waiting learn the run is off).
    func arrive(failed: Bool) {
        if failed { pb_store_i64(word + 1, 1) }
        _ = pb_fetch_add_i64(word, 1)
    }

    /// Arrives and waits until every party has arrived. Returns false if any party arrived
    /// with `failed: true`.
    @discardableResult
    func arriveAndWait(failed: Bool = false) -> Bool {
        if failed { pb_store_i64(word + 1, 1) }   // before the arrival that publishes it
        _ = pb_fetch_add_i64(word, 1)
        var spins = 0
        while pb_acquire_load_i64(word) < parties {
            if spins < 10_000 { spins += 1; pb_cpu_relax() } else { sched_yield() }
        }
        return pb_load_i64(word + 1) == 0
    }
}

/// One integer shared between threads, alone on a 128-byte line, with release stores and
/// acquire loads (a publisher's earlier writes are visible to a reader that sees the value).
final class SharedCounter: @unchecked Sendable {
    // The only mutable state is the word, accessed with atomics.
    private let word: UnsafeMutablePointer<Int64>

    init(_ value: Int = 0) {
        word = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128)
            .bindMemory(to: Int64.self, capacity: 16)
        word.initialize(repeating: 0, count: 16)
        word.pointee = Int64(value)
    }

    deinit { UnsafeMutableRawPointer(word).deallocate() }

    func load() -> Int { Int(pb_acquire_load_i64(word)) }
    func store(_ value: Int) { pb_release_store_i64(word, Int64(value)) }
    func add(_ delta: Int) { _ = pb_fetch_add_i64(word, Int64(delta)) }
    /// Adds `delta` and returns the value it made: one thread sees each value.
    func addAndFetch(_ delta: Int) -> Int { Int(pb_fetch_add_i64(word, Int64(delta))) + delta }
}

/// One step of a spin-wait: `pause` for a while, then yield the CPU so that a peer pinned to
/// the same CPU can run.
@inline(__always)
func backoff(_ spins: inout Int, spinLimit: Int = 1000) {
    if spins < spinLimit {
        spins += 1
        pb_cpu_relax()
    } else {
        sched_yield()
    }
}

/// Where the readers of concurrent streams wait for each other after their own stream has
/// ended: each crosses once; `crossAndWait` returns when all have crossed. The wait sleeps
/// (100 µs at a time) rather than spins, so that a finished stream leaves its CPU to the
/// streams still running.
final class FinishLine: @unchecked Sendable {
    private let remaining: SharedCounter

    init(parties: Int) { remaining = SharedCounter(parties) }

    /// Crosses without waiting (a reader that failed).
    func cross() { remaining.add(-1) }

    func crossAndWait() {
        remaining.add(-1)
        var request = timespec(tv_sec: 0, tv_nsec: 100_000)
        while remaining.load() > 0 { nanosleep(&request, nil) }
    }
}

/// How every measuring thread starts: it places itself (CPU, NUMA node), then prepares what
/// it needs — its buffers, so that they are allocated and touched where it now runs — and
/// then waits at `barrier` with the others, saying whether it got ready. A thread that failed
/// throws its own error; the others learn the run is off and throw `peerFailed`.
func startTogether<Prepared>(
    _ barrier: SpinBarrier, cpu: Int?, node: Int?, peerFailed: @autoclosure () -> String,
    prepare: () throws -> Prepared
) throws -> Prepared {
    let setup = Swift.Result { () throws -> Prepared in
        try applyThreadPlacement(cpu: cpu, node: node)
        return try prepare()
    }
    guard barrier.arriveAndWait(failed: (try? setup.get()) == nil) else {
        if case .failure(let e) = setup { throw e }
        throw HarnessError.peerClosed(peerFailed())
    }
    return try setup.get()
}

/// One thread's own clocks over its measured work: wall time (CLOCK_MONOTONIC) from `begin`
/// to `finish`, its CPU time (CLOCK_THREAD_CPUTIME_ID) over the same span, the CPU it was on
/// at each end, and what it did meanwhile (`ThreadActivity`: engine events, context switches,
/// user and system time), read just outside the timed span.
struct SideClock: Sendable {
    var start: Int64 = 0
    var end: Int64 = 0
    var cpuNs: Int64 = 0
    var cpusSeen: [Int] = []
    var activity = ThreadActivity()
    private var cpuAtStart: Int64 = 0

    mutating func begin() {
        cpusSeen.append(Int(pb_sched_getcpu()))
        activity = ThreadActivity.thisThread
        cpuAtStart = pb_thread_cpu_ns()
        start = pb_monotonic_ns()
    }

    mutating func finish() {
        end = pb_monotonic_ns()
        cpuNs = pb_thread_cpu_ns() - cpuAtStart
        activity = ThreadActivity.thisThread - activity
        cpusSeen.append(Int(pb_sched_getcpu()))
    }
}
