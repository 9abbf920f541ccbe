import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

// The kernel's sleep and lock primitives, in user space: PipeMutex (PIPE_MTX), WaitChannel
// (msleep, wakeup, wakeup_one) and EngineThread.interrupt (PCATCH and a caught signal). How
// they differ from the kernel's, and why, is written once, in the catalog article
// FidelityAndDifferences (Sources/PipeEngine/PipeEngine.docc/FidelityAndDifferences.md).
//
// How they work: WaitChannel.sleep drops the mutex, optionally spins on the channel's futex
// word (for a budget learned per wmesg, and not for long waits while the machine's CPUs are
// all taken: RunQueueSignal), then parks on it with a futex, and retakes the mutex. wakeup /
// wakeupOne bump the word and make a FUTEX_WAKE only when someone is parked (spinners see the
// bump themselves). EngineThread.interrupt marks the target thread and
// kicks the channel it sleeps on: a kick bumps the word too, but counts itself apart first,
// so a sleeper tells a wake-up (the word moved more than the kicks) from a kick: only the
// marked thread ends its sleep (sleepq_abort); the others wake from the futex, find no
// wake-up, and park again. The interrupted msleep returns EINTR, or ERESTART for a restarting
// (SA_RESTART) interruption. A wake-up costs one atomic add, as before kicks were told apart.
//
// Every wakeup in sys_pipe.c is made with the pipe mutex held, and a sleeper reads the word
// before dropping that mutex, so a wakeup can never fall between the test and the sleep; it
// reads the word again before each futex wait, so a wake-up or a kick between that read and
// the wait makes the wait return at once. Sleeps may end spuriously; every msleep in the seed sits in a loop that re-tests its
// condition, as the kernel's callers must too. The wait strategy (spin or not) changes how a
// sleeper waits, never what the caller decides afterwards.

/// A zeroed, 64-byte-aligned cache line of `T`s, for words that threads on different CPUs
/// write: alone on their line, they never drag a neighbour's line along (false sharing).
/// Free it with `UnsafeMutableRawPointer(p).deallocate()`.
func allocateCacheLine<T: FixedWidthInteger>(of _: T.Type) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        .initializeMemory(as: T.self, repeating: 0, count: 64 / MemoryLayout<T>.stride)
}

/// `PIPE_MTX`: a spin-then-park mutex on a futex word (`pb_lock` in CPipeSys), alone on its
/// cache line. The engine's critical sections are a few dozen instructions and never block,
/// so a contended lock spins briefly before parking; a pthread mutex parks at once, and on a
/// 2-vCPU VM that made every contended small read or write pay a futex sleep and wake-up.
final class PipeMutex: @unchecked Sendable {
    private let word: UnsafeMutablePointer<UInt32>

    init() { word = allocateCacheLine(of: UInt32.self) }

    deinit { UnsafeMutableRawPointer(word).deallocate() }

    @inline(__always) func lock() { pb_lock(word) }
    @inline(__always) func unlock() { pb_unlock(word) }

    /// The lock itself, as a plain value: what the pipes hold, so that taking the pair's mutex
    /// on the hot path costs no reference counting on an object both threads share.
    var ref: MutexWord { MutexWord(word: word) }
}

/// A `PipeMutex`'s word, borrowed: valid while the owning `PipeMutex` lives. The pipe pairs'
/// mutexes are taken through it, so it counts their contention (`PipeEvent.mutexContended`).
struct MutexWord {
    let word: UnsafeMutablePointer<UInt32>
    @inline(__always) func lock() {
        pb_lock_counted(word, Int32(PipeEvent.mutexContended.rawValue), Int32(PipeEvent.mutexParked.rawValue))
    }
    @inline(__always) func unlock() { pb_unlock(word) }
}

/// How a thread waits in `msleep`: spin on the channel for up to `maxSpinNanoseconds`
/// (adapting to how long recent waits took), then park. 0 means always park at once.
public struct WaitStrategy: Sendable, Hashable, CustomStringConvertible {
    public var maxSpinNanoseconds: Int

    public init(maxSpinNanoseconds: Int) { self.maxSpinNanoseconds = max(0, maxSpinNanoseconds) }

    /// Never spin: every wait parks the thread (the kernel's behaviour).
    public static let park = WaitStrategy(maxSpinNanoseconds: 0)
    /// Spin up to 50 µs before parking: longer than a cross-vCPU wake-up here (~20 µs).
    public static let spin = WaitStrategy(maxSpinNanoseconds: 50_000)

    public var description: String {
        maxSpinNanoseconds == 0 ? "park" : "spin:\(maxSpinNanoseconds)ns"
    }
}

/// How long one wait spins before it parks.
enum SpinBudget {
    /// The longest spin while the machine is oversubscribed: a wait expected to take longer
    /// parks at once. Spinning then takes the CPU from a thread that has work (perhaps the one
    /// waited for); parking costs the waiter a futex wait and a wake-up, a few µs of CPU here,
    /// so only a wait shorter than that is worth spinning for.
    static let oversubscribedNanoseconds = 5_000

    /// Twice the recent successful wait, at least 2 µs, at most `maxNanoseconds` (glibc's
    /// adaptive mutex idea); while oversubscribed, 0 (park at once) when that is more than
    /// `oversubscribedNanoseconds`.
    static func nanoseconds(estimate: Int, maxNanoseconds: Int, oversubscribed: Bool) -> Int {
        let budget = min(maxNanoseconds, max(2_000, 2 * estimate))
        return oversubscribed && budget > oversubscribedNanoseconds ? 0 : budget
    }
}

/// Whether every CPU of the machine has a runnable thread that is not spinning in the engine:
/// then a spinner can only run by taking a CPU from a thread with work to do — the jobserver's
/// token holders, busy outside the engine, which a count of the engine's own sleepers cannot
/// see. The signal is the kernel's count of runnable threads (`/proc/loadavg`), sampled at most
/// once a millisecond by whichever sleeper finds the sample stale, less the threads spinning
/// in the engine at that moment and the sampler itself. Process-wide, as the run queues are.
enum RunQueueSignal {
    /// How old a sample may be before the next sleeper takes another, in ns.
    static let sampleIntervalNanoseconds: Int64 = 1_000_000
    /// The machine's online CPUs: the run queues that /proc/loadavg counts over.
    static let cpus = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    /// [0]: when the last sample was taken (ns, monotonic), [1]: 1 when it found the machine
    /// oversubscribed. Read by every sleeper, written once a millisecond.
    nonisolated(unsafe) private static let sample = allocateCacheLine(of: Int64.self)
    /// Threads spinning in `WaitChannel.sleep` now; apart from `sample`, which spinners only read.
    nonisolated(unsafe) private static let spinners = allocateCacheLine(of: Int64.self)

    /// Whether the latest sample found the machine oversubscribed, taking a new one first when
    /// it is older than `sampleIntervalNanoseconds` and no other sleeper is taking it.
    static func isOversubscribed(now: Int64) -> Bool {
        var last = pb_load_relaxed_i64(sample)
        if now - last >= sampleIntervalNanoseconds && pb_cas_i64(sample, &last, now),
           let found = sampleNow() {
            pb_store_i64(sample + 1, found ? 1 : 0)
        }
        return pb_load_relaxed_i64(sample + 1) != 0
    }

    /// What the run queues say now (nil when /proc/loadavg cannot be read: never oversubscribed).
    static func sampleNow() -> Bool? {
        let runnable = Int(pb_runnable_threads())
        guard runnable >= 0 else { return nil }
        return oversubscribed(runnable: runnable, spinning: Int(pb_load_i64(spinners)), cpus: cpus)
    }

    /// The rule: the runnable threads, less those spinning in the engine and the sampler
    /// (about to wait, not to work), fill every CPU.
    static func oversubscribed(runnable: Int, spinning: Int, cpus: Int) -> Bool {
        runnable - spinning - 1 >= cpus
    }

    @inline(__always) static func spinning(_ delta: Int64) { _ = pb_fetch_add_i64(spinners, delta) }
}

/// Something a sleeping thread waits on, which an interruption can wake.
protocol Kickable: AnyObject, Sendable {
    func kick()
}

/// The `wmesg` of each `msleep` in the seed: what the sleeper waits for. One channel serves
/// waits of very different lengths (on `&cpipe`, a reader waiting for the next write and a
/// writer waiting for the reader to drain the buffer to `MINPIPESIZE` — hundreds of
/// nanoseconds against tens of microseconds at 64-byte writes), so each keeps its own spin
/// estimate: a shared one made the long waits spin too briefly and park.
enum WaitMessage: Int, CaseIterable {
    case pipelk, piperd, pipdww, pipdwc, pipdwt, pipbww, pipewr, pipecl, fifoor, fifoow
}

/// A sleep channel (`&cpipe` or `&cpipe->pipe_waiters` in the seed).
final class WaitChannel: Kickable, @unchecked Sendable {
    /// [0]: the futex word (bumped by wake-ups and kicks), [1]: threads parked in the futex,
    /// [2 + wmesg]: the adaptive spin estimate in ns of each kind of wait, [kickIndex]: the
    /// kicks so far. Kept on one cache line of their own.
    private let words: UnsafeMutablePointer<UInt32>
    private static let kickIndex = 2 + WaitMessage.allCases.count

    init() {
        words = allocateCacheLine(of: UInt32.self)
        assert(Self.kickIndex < 16, "the channel's words fill one cache line")
    }

    /// What a sleeper saw before it dropped the mutex.
    private struct Observation {
        var word: UInt32
        var kicks: UInt32
    }

    @inline(__always) private func observe() -> Observation {
        // The word first: a kick counted in `kicks` but not yet in the word reads as no
        // wake-up, and the wait that follows returns at once when the word moves.
        let word = pb_load_u32(words)
        return Observation(word: word, kicks: pb_load_u32(words + Self.kickIndex))
    }

    /// Whether a wake-up (not only kicks) moved the word since `o`.
    @inline(__always) private func wokenUp(since o: Observation) -> Bool {
        let now = observe()
        return now.word &- o.word > now.kicks &- o.kicks
    }

    deinit { UnsafeMutableRawPointer(words).deallocate() }

    /// The wake-ups made on this channel so far (kicks not counted).
    var wakeupCount: UInt32 { let o = observe(); return o.word &- o.kicks }

    /// `wakeup(chan)`: wake every sleeper. Called with the pipe mutex held.
    @inline(__always) func wakeup() {
        PipeEvent.wakeup.count()
        _ = pb_fetch_add_u32(words, 1)
        if pb_load_u32(words + 1) != 0 { PipeEvent.wakeupFutex.count(); _ = pb_futex_wake(words, Int32.max) }
    }

    /// `wakeup_one(chan)`: wake one sleeper (spinners may also see the bump: they re-test).
    @inline(__always) func wakeupOne() {
        PipeEvent.wakeup.count()
        _ = pb_fetch_add_u32(words, 1)
        if pb_load_u32(words + 1) != 0 { PipeEvent.wakeupFutex.count(); _ = pb_futex_wake(words, 1) }
    }

    /// `msleep(chan, mtx, PRIBIO | (catch ? PCATCH : 0), wmesg, 0)`.
    /// Called with `mutex` held; returns with it held. Returns nil when woken (possibly
    /// spuriously), or EINTR / ERESTART when `interruptible` and the thread was interrupted.
    func sleep(_ mutex: MutexWord, interruptible: Bool, _ wmesg: WaitMessage,
               strategy: WaitStrategy) -> Errno? {
        let thread = EngineThread.current
        if interruptible, let error = thread.takeInterruption() { return error }
        let observed = observe()
        thread.enterSleep(on: self)
        mutex.unlock()
        var woken = false
        if strategy.maxSpinNanoseconds > 0 {
            let estimateWord = words + 2 + wmesg.rawValue
            let start = pb_monotonic_ns()
            let estimate = Int(pb_load_relaxed_u32(estimateWord))
            let budget = SpinBudget.nanoseconds(
                estimate: estimate, maxNanoseconds: strategy.maxSpinNanoseconds,
                oversubscribed: RunQueueSignal.isOversubscribed(now: start))
            if budget > 0 {
                RunQueueSignal.spinning(1)
                woken = spin(observed: observed, thread: thread, interruptible: interruptible,
                             estimateAt: estimateWord, estimate: estimate, budget: budget,
                             start: start, maxNanoseconds: strategy.maxSpinNanoseconds)
                RunQueueSignal.spinning(-1)
            }
        }
        if !woken {
            _ = pb_fetch_add_u32(words + 1, 1)
            var word = pb_load_u32(words)
            while !wokenUp(since: observed) && !(interruptible && thread.isInterruptPending) {
                _ = pb_futex_wait(words, word, nil)
                word = pb_load_u32(words)
            }
            _ = pb_fetch_sub_u32(words + 1, 1)
        }
        thread.leaveSleep()
        mutex.lock()
        PipeEvent.sleep(wmesg).count()
        (woken ? PipeEvent.sleepSpun : .sleepParked).count()
        if interruptible, let error = thread.takeInterruption() { return error }
        return nil
    }

    /// Spins until a wake-up since `observed`, for `budget` ns (``SpinBudget``), and moves the
    /// wait's estimate toward what it measured. Returns true when the channel was woken (or an
    /// interruption arrived) while spinning.
    private func spin(observed: Observation, thread: EngineThread, interruptible: Bool,
                      estimateAt estimateWord: UnsafeMutablePointer<UInt32>, estimate: Int,
                      budget: Int, start: Int64, maxNanoseconds: Int) -> Bool {
        var spins = 0
        while true {
            // (The cheap test first; only a moved word needs telling a wake-up from a kick.)
            if pb_load_relaxed_u32(words) != observed.word && wokenUp(since: observed) { break }
            if interruptible && thread.isInterruptPending { return true }
            pb_cpu_relax()
            spins &+= 1
            if spins & 15 == 0 && Int(pb_monotonic_ns() - start) > budget {
                // Failed: let the estimate drift up so a slow partner is waited for next time.
                let next = min(maxNanoseconds, estimate + (budget - estimate) / 8)
                pb_store_u32(estimateWord, UInt32(clamping: next))
                return false
            }
        }
        let waited = Int(pb_monotonic_ns() - start)
        pb_store_u32(estimateWord, UInt32(clamping: estimate + (waited - estimate) / 8))
        return true
    }

    /// Threads parked in the futex now (past their spin; each spin's estimate is stored first).
    var parkedThreads: Int { Int(pb_load_u32(words + 1)) }

    /// The spin estimate that waits of kind `wmesg` have learned on this channel, in ns.
    func spinEstimateNanoseconds(_ wmesg: WaitMessage) -> Int {
        Int(pb_load_relaxed_u32(words + 2 + wmesg.rawValue))
    }

    /// Delivers an interruption (`sleepq_abort`): ends the sleep of the marked thread alone.
    /// The futex word moves so that a thread between its test and its futex wait does not
    /// sleep through the mark; the kick is counted first, so every other sleeper, woken from
    /// the futex, finds no wake-up and parks again.
    func kick() {
        _ = pb_fetch_add_u32(words + Self.kickIndex, 1)
        _ = pb_fetch_add_u32(words, 1)
        _ = pb_futex_wake(words, Int32.max)
    }
}

/// A thread as the engine sees it: where it sleeps, whether a signal is pending for it, and
/// the signals the engine delivered to it (SIGPIPE after EPIPE, for instance).
///
/// `EngineThread.current` is the calling thread's record (created on first use). Another thread
/// may `interrupt` it: that is the user-space stand-in for a signal caught by a handler, and
/// ends an interruptible sleep (`PCATCH`) with EINTR, or ERESTART with `restart: true`.
public final class EngineThread: @unchecked Sendable {
    /// A small lock guarding `sleepingOn` and `signalCounts`; the pending word is atomic.
    private let lock = PipeMutex()
    /// Unretained: the channel (a pipe's, or a poll waiter) outlives the sleep, which ends
    /// with `leaveSleep` under `lock`; `interrupt` kicks it under `lock` too. A retain here
    /// was an atomic operation on a channel the waking thread touches, on every sleep.
    unowned(unsafe) private var sleepingOn: (any Kickable)?
    /// 0: none, 1: EINTR pending, 2: ERESTART pending.
    private let pending: UnsafeMutablePointer<UInt32>
    private var signalCounts: [Signal: Int] = [:]
    /// The kernel thread id (`gettid`), for messages and tests.
    public let tid: Int32

    private init() {
        pending = .allocate(capacity: 1)
        pending.initialize(to: 0)
        tid = pb_gettid()
    }

    deinit { pending.deallocate() }

    nonisolated(unsafe) private static var key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            if let raw { Unmanaged<EngineThread>.fromOpaque(raw).release() }
        }
        return key
    }()

    /// The calling thread's record.
    public static var current: EngineThread { currentRef.takeUnretainedValue() }

    /// The calling thread's record, unretained: the thread-specific slot owns it until the
    /// thread exits, so the hot paths borrow it (`_withUnsafeGuaranteedRef`).
    @inline(__always)
    static var currentRef: Unmanaged<EngineThread> {
        let key = EngineThread.key
        if let raw = pthread_getspecific(key) { return Unmanaged.fromOpaque(raw) }
        let thread = Unmanaged.passRetained(EngineThread())
        pthread_setspecific(key, thread.toOpaque())
        return thread
    }

    /// Interrupts the thread as a caught signal would: if it sleeps interruptibly in the engine
    /// now (or does so before it next returns from an engine system call), that sleep ends with
    /// EINTR — or with ERESTART when `restart` is true (`SA_RESTART`), which makes the system
    /// call start again when nothing had moved yet.
    public func interrupt(restart: Bool = false) {
        lock.lock()
        pb_store_u32(pending, restart ? 2 : 1)
        sleepingOn?.kick()
        lock.unlock()
    }

    var isInterruptPending: Bool { pb_load_relaxed_u32(pending) != 0 }

    /// Consumes a pending interruption, returning the error its sleep ends with.
    @inline(__always)
    func takeInterruption() -> Errno? {
        if pb_load_relaxed_u32(pending) == 0 { return nil }   // the usual case: no atomic write
        switch pb_exchange_u32(pending, 0) {
        case 0: return nil
        case 2: return .restart
        default: return .interrupted
        }
    }

    /// Drops an interruption that no sleep consumed: its signal was delivered when the system
    /// call returned to the caller (the kernel's `ast` on the way out to user mode).
    func discardInterruption() { _ = pb_exchange_u32(pending, 0) }

    func enterSleep(on channel: any Kickable) {
        lock.lock()
        sleepingOn = channel
        lock.unlock()
    }

    func leaveSleep() {
        lock.lock()
        sleepingOn = nil
        lock.unlock()
    }

    /// Records a signal delivered to this thread.
    func record(_ signal: Signal) {
        lock.lock()
        signalCounts[signal, default: 0] += 1
        lock.unlock()
    }

    /// How many times the engine delivered `signal` to this thread.
    public func deliveredCount(of signal: Signal) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return signalCounts[signal] ?? 0
    }
}

extension EngineThread {
    /// A pending `alarm`: cancel it before it fires, or let it interrupt its thread.
    public final class Alarm: @unchecked Sendable {
        fileprivate let cancelled: UnsafeMutablePointer<UInt32>
        fileprivate init() {
            cancelled = .allocate(capacity: 1)
            cancelled.initialize(to: 0)
        }
        deinit { cancelled.deallocate() }
        /// Stops the alarm if it has not fired yet (`alarm(0)`).
        public func cancel() {
            pb_store_u32(cancelled, 1)
            _ = pb_futex_wake(cancelled, 1)
        }
    }

    /// `alarm(2)` with a caught SIGALRM: after `nanoseconds`, interrupt this thread (with
    /// restart semantics when `restart`), as a timer signal would. The timer runs on a thread
    /// of its own that sleeps on a futex, so `cancel` ends it at once.
    @discardableResult
    public func alarm(afterNanoseconds nanoseconds: Int, restart: Bool = false) -> Alarm {
        let alarm = Alarm()
        let context = AlarmContext(thread: self, alarm: alarm, nanoseconds: nanoseconds,
                                   restart: restart)
        var tid = pthread_t()
        let box = Unmanaged.passRetained(context).toOpaque()
        let rc = pthread_create(&tid, nil, { raw in
            let context = Unmanaged<AlarmContext>.fromOpaque(raw!).takeRetainedValue()
            context.run()
            return nil
        }, box)
        if rc == 0 {
            pthread_detach(tid)
        } else {
            // No thread could be made: fire now rather than never.
            Unmanaged<AlarmContext>.fromOpaque(box).release()
            record(.SIGALRM)
            interrupt(restart: restart)
        }
        return alarm
    }
}

private final class AlarmContext: @unchecked Sendable {
    let thread: EngineThread
    let alarm: EngineThread.Alarm
    let nanoseconds: Int
    let restart: Bool
    init(thread: EngineThread, alarm: EngineThread.Alarm, nanoseconds: Int, restart: Bool) {
        self.thread = thread
        self.alarm = alarm
        self.nanoseconds = nanoseconds
        self.restart = restart
    }
    func run() {
        let deadline = pb_monotonic_ns() + Int64(nanoseconds)
        while pb_load_u32(alarm.cancelled) == 0 {
            let left = deadline - pb_monotonic_ns()
            if left <= 0 {
                thread.record(.SIGALRM)
                thread.interrupt(restart: restart)
                return
            }
            var ts = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
            _ = pb_futex_wait(alarm.cancelled, 0, &ts)
        }
    }
}
