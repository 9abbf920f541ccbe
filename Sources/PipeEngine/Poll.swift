import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// Poll event bits, with Linux's values (so Glibc's `POLLIN` etc. can be passed as they are),
/// plus FreeBSD's `POLLINIGNEOF`, which Linux lacks (given a value Linux does not use).
public enum PollEvents {
    public static let POLLIN: Int16 = 0x001
    public static let POLLPRI: Int16 = 0x002
    public static let POLLOUT: Int16 = 0x004
    public static let POLLERR: Int16 = 0x008
    public static let POLLHUP: Int16 = 0x010
    public static let POLLNVAL: Int16 = 0x020
    public static let POLLRDNORM: Int16 = 0x040
    public static let POLLRDBAND: Int16 = 0x080
    public static let POLLWRNORM: Int16 = 0x100
    public static let POLLWRBAND: Int16 = 0x200
    /// FreeBSD's POLLINIGNEOF: ignore EOF when polling for input (used by FIFO readers).
    public static let POLLINIGNEOF: Int16 = 0x4000
}

/// `struct pollfd`.
public struct PollFD: Sendable, Hashable {
    public var fd: Int32
    public var events: Int16
    public var revents: Int16
    public init(fd: Int32, events: Int16, revents: Int16 = 0) {
        self.fd = fd
        self.events = events
        self.revents = revents
    }
}

/// A pipe a poll waiter was recorded on (`selrecord`), with its pair: the pair (and so the
/// mutex `seltdclear` takes) must outlive the poll call even if both ends close meanwhile.
struct RecordedPipe {
    let pipe: Pipe
    let pair: PipePair
    init(pipe: Pipe) {
        self.pipe = pipe
        pair = pipe.pipe_pair
    }
}

extension PipeKernel {
    /// `pipe_poll`: the readiness of one descriptor. When nothing is ready the waiter is
    /// recorded (`selrecord`) on the pipes it may be woken by, and returned in `recorded`.
    func pipe_poll(_ fp: File, _ eventsIn: Int16, _ waiter: PollWaiter?,
                   _ recorded: inout [RecordedPipe]) -> Result<Int16, Errno> {
        typealias P = PollEvents
        var events = eventsIn
        var revents: Int16 = 0
        let rpipe = fp.f_data
        let wpipe = rpipe.PIPE_PEER
        rpipe.PIPE_LOCK()
        if let policy, policy.check(.poll, fp.f_cred) != nil {
            // mac_pipe_check_poll: `goto locked_error` returns the events gathered so far,
            // none, and records no waiter.
            rpipe.PIPE_UNLOCK()
            return .success(revents)
        }
        let f = fp.f_flag
        if f.contains(.FREAD) && events & (P.POLLIN | P.POLLRDNORM) != 0 {
            if rpipe.pipe_pages.cnt > 0 || rpipe.pipe_buffer.cnt > 0 {
                revents |= events & (P.POLLIN | P.POLLRDNORM)
            }
        }
        if f.contains(.FWRITE) && events & (P.POLLOUT | P.POLLWRNORM) != 0 {
            if wpipe.pipe_present != .ACTIVE || wpipe.pipe_state.contains(.EOF) ||
                (!wpipe.pipe_state.contains(.DIRECTW) &&
                 (wpipe.pipe_buffer.size - wpipe.pipe_buffer.cnt >= PIPE_BUF ||
                  wpipe.pipe_buffer.size == 0)) {
                revents |= events & (P.POLLOUT | P.POLLWRNORM)
            }
        }
        let levents = events & (P.POLLIN | P.POLLINIGNEOF | P.POLLPRI | P.POLLRDNORM | P.POLLRDBAND)
        if rpipe.isNamed && f.contains(.FREAD) && levents != 0 && fp.f_pipegen == rpipe.pipe_wgen {
            events |= P.POLLINIGNEOF
        }
        if events & P.POLLINIGNEOF == 0 {
            if rpipe.pipe_state.contains(.EOF) {
                if f.contains(.FREAD) {
                    revents |= events & (P.POLLIN | P.POLLRDNORM)
                }
                if wpipe.pipe_present != .ACTIVE || wpipe.pipe_state.contains(.EOF) {
                    revents |= P.POLLHUP
                }
            }
        }
        if revents == 0, let waiter {
            // Add ourselves regardless of eventmask as we have to return POLLHUP even if it
            // was not asked for.
            if f.contains(.FREAD) {
                rpipe.pipe_sel.selrecord(waiter)
                recorded.append(RecordedPipe(pipe: rpipe))
                if rpipe.pipe_sel.SEL_WAITING { rpipe.pipe_state.insert(.SEL) }
            }
            if f.contains(.FWRITE) && wpipe.pipe_present == .ACTIVE {
                wpipe.pipe_sel.selrecord(waiter)
                recorded.append(RecordedPipe(pipe: wpipe))
                if wpipe.pipe_sel.SEL_WAITING { wpipe.pipe_state.insert(.SEL) }
            }
        }
        rpipe.PIPE_UNLOCK()
        return .success(revents)
    }
}

extension PipeSystem {
    /// `poll(fds, nfds, timeout)`: `timeout` in milliseconds, -1 for none. Returns the number
    /// of descriptors with events; EINTR when interrupted while waiting. A negative fd is
    /// skipped; a closed one gets POLLNVAL; POLLOUT is dropped when POLLHUP is set.
    public func poll(_ fds: inout [PollFD], timeout milliseconds: Int32) throws(Errno) -> Int {
        try fds.withUnsafeMutableBufferPointer { (buffer) throws(Errno) -> Int in
            try poll(buffer, timeout: milliseconds)
        }
    }

    /// `poll` over a caller's buffer of `PollFD`s.
    public func poll(_ fds: UnsafeMutableBufferPointer<PollFD>, timeout milliseconds: Int32) throws(Errno) -> Int {
        guard milliseconds >= -1 else { throw .invalidArgument }
        return try kern_poll(timeout: milliseconds < 0 ? nil : Int(milliseconds) * 1_000_000) {
            (waiter, recorded) throws(Errno) -> Int in
            var n = 0
            for i in fds.indices {
                fds[i].revents = 0
                guard fds[i].fd >= 0 else { continue }
                guard let fo = table.fget(fds[i].fd) else {
                    fds[i].revents = PollEvents.POLLNVAL
                    n += 1
                    continue
                }
                defer { fdrop(fo) }
                var revents: Int16
                if let fp = fo as? File {
                    switch kernel.pipe_poll(fp, fds[i].events, waiter, &recorded) {
                    case .success(let r): revents = r
                    case .failure(let e): throw e
                    }
                } else if let kq = fo as? KqueueFile {
                    revents = kqueue_poll(kq, fds[i].events, waiter)
                } else {
                    revents = 0
                }
                // POSIX requires POLLOUT to be never set simultaneously with POLLHUP (on
                // FreeBSD POLLWRNORM is POLLOUT, so it goes too).
                if revents & PollEvents.POLLHUP != 0 {
                    revents &= ~(PollEvents.POLLOUT | PollEvents.POLLWRNORM)
                }
                fds[i].revents = revents
                if revents != 0 { n += 1 }
            }
            return n
        }
    }

    /// `select(nfds, readfds, writefds, exceptfds, timeout)` over `Set`s of descriptors,
    /// mapped onto pipe_poll as FreeBSD's selscan does: read is POLLRDNORM|POLLHUP|POLLERR,
    /// write POLLWRNORM|POLLHUP|POLLERR, except POLLRDBAND (a hung-up pipe is readable and
    /// writable). On return each set holds its ready descriptors; the result is their total.
    /// A descriptor that is not open is EBADF.
    public func select(read: inout Set<Int32>, write: inout Set<Int32>, except: inout Set<Int32>,
                       timeout nanoseconds: Int?) throws(Errno) -> Int {
        typealias P = PollEvents
        let flags: [Int16] = [P.POLLRDNORM | P.POLLHUP | P.POLLERR,
                              P.POLLWRNORM | P.POLLHUP | P.POLLERR, P.POLLRDBAND]
        let asked = [read, write, except]
        for set in asked {
            for fd in set where table.fget(fd).map({ fdrop($0); return true }) != true {
                throw .badFileDescriptor
            }
        }
        var ready: [Set<Int32>] = [[], [], []]
        let fds = asked[0].union(asked[1]).union(asked[2]).sorted()
        let n = try kern_poll(timeout: nanoseconds) { (waiter, recorded) throws(Errno) -> Int in
            var total = 0
            ready = [[], [], []]
            // selscan: one fo_poll per descriptor, asking for the flags of every set it is
            // in at once, then selsetbits marks it in each set whose flags came back.
            for fd in fds {
                var events: Int16 = 0
                for k in 0..<3 where asked[k].contains(fd) { events |= flags[k] }
                guard let fo = table.fget(fd) else { throw .badFileDescriptor }
                defer { fdrop(fo) }
                var ev: Int16 = 0
                if let fp = fo as? File {
                    switch kernel.pipe_poll(fp, events, waiter, &recorded) {
                    case .success(let r): ev = r
                    case .failure(let e): throw e
                    }
                } else if let kq = fo as? KqueueFile {
                    ev = kqueue_poll(kq, events, waiter)
                }
                for k in 0..<3 where asked[k].contains(fd) && ev & flags[k] != 0 {
                    ready[k].insert(fd)
                    total += 1
                }
            }
            return total
        }
        read = ready[0]
        write = ready[1]
        except = ready[2]
        return n
    }

    /// The common loop of poll, select and kevent's wait: scan; if nothing is ready, sleep
    /// until a recorded pipe calls selwakeup, the timeout passes, or the thread is
    /// interrupted (EINTR); rescan. The waiter is removed from every pipe when it returns
    /// (`seltdclear`).
    func kern_poll(timeout nanoseconds: Int?,
                   _ scan: (PollWaiter?, inout [RecordedPipe]) throws(Errno) -> Int) throws(Errno) -> Int {
        let thread = EngineThread.current
        // A zero timeout never waits, so it never needs to be woken.
        if nanoseconds == 0 {
            var none: [RecordedPipe] = []
            let n = try scan(nil, &none)
            if thread.isInterruptPending { thread.discardInterruption() }
            return n
        }
        let waiter = PollWaiter()
        var recorded: [RecordedPipe] = []
        defer {
            for entry in recorded {
                entry.pipe.PIPE_LOCK()
                entry.pipe.pipe_sel.selremove(waiter)
                entry.pipe.PIPE_UNLOCK()
            }
            kqueues.forget(waiter)
        }
        let deadline = nanoseconds.map { pb_monotonic_ns() + Int64($0) }
        while true {
            let observed = waiter.generation
            let n = try scan(waiter, &recorded)
            if n > 0 {
                if thread.isInterruptPending { thread.discardInterruption() }
                return n
            }
            if thread.takeInterruption() != nil { throw .interrupted }
            let left = deadline.map { Int($0 - pb_monotonic_ns()) }
            if let left, left <= 0 { return 0 }
            if !waiter.wait(observed: observed, timeoutNanoseconds: left, thread: thread) {
                // Timed out: one last scan, as the kernel's does after its sleep ends.
                var none: [RecordedPipe] = []
                return try scan(nil, &none)
            }
        }
    }
}
