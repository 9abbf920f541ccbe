import CPipeSys

/// `struct selinfo`: the poll/select waiters recorded on one pipe end (`selrecord`), woken by
/// `selwakeup`, and the knotes attached to it (`si_note`). Guarded by the pair's mutex.
final class SelInfo: @unchecked Sendable {
    /// Waiters recorded by `selrecord`; each stays until its poll call ends (`seltdclear`).
    private var waiters: [PollWaiter] = []
    /// Knotes attached with `knlist_add`.
    var notes: [KnoteHook] = []

    /// `SEL_WAITING(sip)`.
    var SEL_WAITING: Bool { !waiters.isEmpty }

    /// `selrecord(td, sip)`.
    func selrecord(_ waiter: PollWaiter) {
        if !waiters.contains(where: { $0 === waiter }) { waiters.append(waiter) }
    }

    /// `seltdclear` for one waiter (its poll call is over).
    func selremove(_ waiter: PollWaiter) {
        waiters.removeAll { $0 === waiter }
    }

    /// `selwakeuppri(sip, PSOCK)`: wake every recorded waiter; they stay recorded until their
    /// poll call ends, as in the kernel.
    func selwakeup() {
        for waiter in waiters { waiter.wake() }
    }

    /// `seldrain`: the end is going away; wake everyone so that they rescan.
    func seldrain() {
        for waiter in waiters { waiter.wake() }
    }

    /// `KNOTE_LOCKED(&si_note, 0)`: run the filter of every attached knote.
    func KNOTE_LOCKED() {
        if notes.isEmpty { return }
        for note in notes { note.activate() }
    }

    /// `knlist_clear(&si_note, 1)`: attached knotes become EV_EOF | EV_ONESHOT, detached.
    func knlist_clear() {
        let detached = notes
        notes.removeAll()
        for note in detached { note.detachOnClose() }
    }
}

/// A thread blocked in `poll`/`select`/`kevent`: a futex word bumped by `selwakeup`.
final class PollWaiter: Kickable, @unchecked Sendable {
    private let word: UnsafeMutablePointer<UInt32>
    init() {
        word = .allocate(capacity: 1)
        word.initialize(to: 0)
    }
    deinit { word.deallocate() }

    var generation: UInt32 { pb_load_u32(word) }

    func wake() {
        _ = pb_fetch_add_u32(word, 1)
        _ = pb_futex_wake(word, Int32.max)
    }

    func kick() { wake() }

    /// Sleeps until `wake` moves the generation past `observed`, the timeout (ns) passes, or
    /// the thread is interrupted. Returns false on timeout.
    func wait(observed: UInt32, timeoutNanoseconds: Int?, thread: EngineThread) -> Bool {
        let deadline = timeoutNanoseconds.map { pb_monotonic_ns() + Int64($0) }
        thread.enterSleep(on: self)
        defer { thread.leaveSleep() }
        while pb_load_u32(word) == observed && !thread.isInterruptPending {
            if let deadline {
                let left = deadline - pb_monotonic_ns()
                if left <= 0 { return false }
                var ts = timespec(tv_sec: Int(left / 1_000_000_000),
                                  tv_nsec: Int(left % 1_000_000_000))
                _ = pb_futex_wait(word, observed, &ts)
            } else {
                _ = pb_futex_wait(word, observed, nil)
            }
        }
        return true
    }
}

/// A knote as the pipe sees it (the kqueue side lives in the kqueue implementation).
protocol KnoteHook: AnyObject {
    /// The pipe's state changed (`KNOTE_LOCKED`), with the pipe mutex held.
    func activate()
    /// The end closed (`knlist_clear`), with the pipe mutex held.
    func detachOnClose()
}
