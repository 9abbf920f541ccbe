#if canImport(Glibc)
import Glibc
#endif

// kqueue and kevent over the pipe filters of sys_pipe.c (pipe_kqfilter, filt_piperead,
// filt_pipewrite, filt_pipedetach, knlist_clear), with the parts of kern_event.c they rely
// on: registration evaluates the filter at once; active knotes are reported in activation
// order; EV_CLEAR resets data after reporting; EV_ONESHOT reports once, without calling the
// filter again, and deletes; EV_DISPATCH disables after reporting; EV_RECEIPT and errors come
// back as EV_ERROR entries while there is room. A FIFO's descriptor also takes EVFILT_VNODE,
// which pipe_kqfilter hands to the vnode (vfs_kqfilter, filt_vfsvnode): the node's knotes
// collect the notes its namespace operations post (FifoNode.knote).
//
// Locking: a knote's pipe mutex is taken before its kqueue's mutex, never after; so is a FIFO
// node's lock (vnodeLock) for its EVFILT_VNODE knotes. Filters run
// with the pipe mutex held (KNOTE_LOCKED from pipeselwakeup, or the scan re-checking a
// level-triggered knote); the kqueue mutex guards the knote table, the active queue, each
// knote's status bits and the list of threads waiting in kevent.

/// `struct kevent` (FreeBSD's layout of fields; `ident` is the descriptor).
public struct Kevent: Sendable, Hashable {
    public var ident: UInt
    public var filter: Int16
    public var flags: UInt16
    public var fflags: UInt32
    public var data: Int
    public var udata: UInt

    public init(ident: UInt, filter: Int16, flags: UInt16, fflags: UInt32 = 0, data: Int = 0,
                udata: UInt = 0) {
        self.ident = ident
        self.filter = filter
        self.flags = flags
        self.fflags = fflags
        self.data = data
        self.udata = udata
    }

    public static let EVFILT_READ: Int16 = -1
    public static let EVFILT_WRITE: Int16 = -2
    public static let EVFILT_AIO: Int16 = -3
    public static let EVFILT_VNODE: Int16 = -4
    public static let EVFILT_PROC: Int16 = -5
    public static let EVFILT_SIGNAL: Int16 = -6
    public static let EVFILT_TIMER: Int16 = -7

    public static let EV_ADD: UInt16 = 0x0001
    public static let EV_DELETE: UInt16 = 0x0002
    public static let EV_ENABLE: UInt16 = 0x0004
    public static let EV_DISABLE: UInt16 = 0x0008
    public static let EV_ONESHOT: UInt16 = 0x0010
    public static let EV_CLEAR: UInt16 = 0x0020
    public static let EV_RECEIPT: UInt16 = 0x0040
    public static let EV_DISPATCH: UInt16 = 0x0080
    public static let EV_ERROR: UInt16 = 0x4000

    // EVFILT_VNODE notes (`fflags`); a FIFO's node reports NOTE_DELETE, NOTE_ATTRIB,
    // NOTE_OPEN, NOTE_CLOSE and NOTE_CLOSE_WRITE (its data goes through the pipe, never
    // through the vnode: no NOTE_WRITE, NOTE_EXTEND or NOTE_READ).
    public static let NOTE_DELETE: UInt32 = 0x0001
    public static let NOTE_WRITE: UInt32 = 0x0002
    public static let NOTE_EXTEND: UInt32 = 0x0004
    public static let NOTE_ATTRIB: UInt32 = 0x0008
    public static let NOTE_LINK: UInt32 = 0x0010
    public static let NOTE_RENAME: UInt32 = 0x0020
    public static let NOTE_REVOKE: UInt32 = 0x0040
    public static let NOTE_OPEN: UInt32 = 0x0080
    public static let NOTE_CLOSE: UInt32 = 0x0100
    public static let NOTE_CLOSE_WRITE: UInt32 = 0x0200
    public static let NOTE_READ: UInt32 = 0x0400
    public static let EV_EOF: UInt16 = 0x8000
    /// Flags a registration keeps (`EV_SYSFLAGS` are never taken from the caller).
    static let storedFlags: UInt16 = EV_ONESHOT | EV_CLEAR | EV_DISPATCH | EV_RECEIPT
}

/// A kqueue descriptor.
final class KqueueFile: FileObject, @unchecked Sendable {
    let kq: Kqueue
    init(kq: Kqueue, cred: Credential, zone: FileWords) {
        self.kq = kq
        super.init(type: .DTYPE_KQUEUE, flags: [.FREAD, .FWRITE], cred: cred, zone: zone)
    }
}

/// Which filter operations a knote uses (`kn_fop`).
enum KnoteOps { case read, write, notSupported, vnode }

/// `struct knote`.
final class Knote: KnoteHook, @unchecked Sendable {
    unowned(unsafe) let kq: Kqueue
    let fd: Int32
    let filter: Int16
    let ops: KnoteOps
    /// `kn_fp`: the file it was registered on (f_flag, f_pipegen).
    let fp: File?
    /// `kn_hook`: the pipe whose knlist holds it; nil once detached. Written with both the
    /// pipe's mutex and the kqueue's mutex held, so either one suffices to read it.
    var hook: Pipe?
    /// The pair of `hook`, held so that its mutex outlives both ends' closing.
    var hookPair: PipePair?
    /// EVFILT_VNODE: the FIFO node whose knote list holds it (`vp->v_pollinfo`); nil once
    /// detached. Written with the node's lock and the kqueue's mutex held.
    var vnode: FifoNode?
    /// `kn_sfflags`: the notes asked for (EVFILT_VNODE).
    let sfflags: UInt32
    // Guarded by the kqueue mutex, except `data` and `eofFlag`, written by the filter with
    // the pipe mutex held and read by the scan with both held.
    var flags: UInt16
    var fflags: UInt32
    var data = 0
    var udata: UInt
    var queued = false
    var disabled = false
    var dropped = false

    init(kq: Kqueue, fd: Int32, filter: Int16, ops: KnoteOps, fp: File?, kev: Kevent) {
        self.kq = kq
        self.fd = fd
        self.filter = filter
        self.ops = ops
        self.fp = fp
        flags = kev.flags & Kevent.storedFlags
        sfflags = kev.fflags
        fflags = ops == .vnode ? 0 : kev.fflags   // a vnode knote's fflags are the notes seen
        udata = kev.udata
    }

    /// `kn_fop->f_event(kn, 0)`, with the pipe mutex held.
    func event() -> Bool {
        switch ops {
        case .notSupported: return false                       // filt_pipenotsup
        case .read: return filt_piperead()
        case .write: return filt_pipewrite()
        case .vnode: return fflags != 0                        // filt_vfsvnode, no new note
        }
    }

    /// `filt_piperead`.
    private func filt_piperead() -> Bool {
        guard let rpipe = hook, let fp else { return false }
        data = rpipe.pipe_buffer.cnt
        if data == 0 { data = rpipe.pipe_pages.cnt }
        if rpipe.pipe_state.contains(.EOF) && (!rpipe.isNamed || fp.f_pipegen != rpipe.pipe_wgen) {
            flags |= Kevent.EV_EOF
            return true
        }
        flags &= ~Kevent.EV_EOF
        return data > 0
    }

    /// `filt_pipewrite`.
    private func filt_pipewrite() -> Bool {
        guard let wpipe = hook else { return false }
        if wpipe.pipe_present == .ACTIVE || wpipe.isNamed {
            if wpipe.pipe_state.contains(.DIRECTW) {
                data = 0
            } else if wpipe.pipe_buffer.size > 0 {
                data = wpipe.pipe_buffer.size - wpipe.pipe_buffer.cnt
            } else {
                data = PIPE_BUF
            }
        }
        if wpipe.pipe_present != .ACTIVE || wpipe.pipe_state.contains(.EOF) {
            flags |= Kevent.EV_EOF
            return true
        }
        flags &= ~Kevent.EV_EOF
        return data >= PIPE_BUF
    }

    /// KNOTE_LOCKED: the pipe changed; run the filter and queue the knote if it fires.
    func activate() {
        if event() { kq.enqueue(self) }
    }

    /// `filt_vfsvnode(kn, hint)` for VFS_KNOTE: keep the note if it was asked for, and fire
    /// while any note is pending. Called with the node's lock held.
    func vnodeNote(_ hint: UInt32) {
        kq.lock.lock()
        if sfflags & hint != 0 { fflags |= hint }
        let fires = fflags != 0
        kq.lock.unlock()
        if fires { kq.enqueue(self) }
    }

    /// knlist_clear: the pipe end is closing; report EOF once and forget the pipe.
    /// Called with the pipe mutex held (the pair stays alive: the closing file holds it).
    func detachOnClose() {
        kq.lock.lock()
        hook = nil
        hookPair = nil
        flags |= Kevent.EV_EOF | Kevent.EV_ONESHOT
        kq.lock.unlock()
        kq.enqueue(self)
    }
}

/// `struct kqueue`.
final class Kqueue: @unchecked Sendable {
    let lock = PipeMutex()
    /// Serialises `kqueue_register` (find-or-attach must be atomic, as KQ_LOCK + KN_INFLUX
    /// make it in the kernel). Taken before any pipe mutex.
    let registerLock = PipeMutex()
    var knotes: [KnoteKey: Knote] = [:]
    var active: [Knote] = []
    var waiters: [PollWaiter] = []

    struct KnoteKey: Hashable {
        let fd: Int32
        let filter: Int16
    }

    /// KNOTE_ACTIVATE: queue in activation order (once) and wake kevent/poll waiters.
    func enqueue(_ kn: Knote) {
        lock.lock()
        if !kn.queued && !kn.disabled && !kn.dropped {
            kn.queued = true
            active.append(kn)
            for waiter in waiters { waiter.wake() }
        }
        lock.unlock()
    }

    func dequeue(_ kn: Knote) {
        if kn.queued {
            kn.queued = false
            active.removeAll { $0 === kn }
        }
    }
}

/// The kqueues of one PipeSystem, so that closing a descriptor can drop its knotes
/// (`knote_fdclose`) and a finished wait can leave every kqueue it waited on.
final class KqueueRegistry: @unchecked Sendable {
    private let lock = PipeMutex()
    private var all: [ObjectIdentifier: Kqueue] = [:]

    func add(_ kq: Kqueue) { lock.lock(); all[ObjectIdentifier(kq)] = kq; lock.unlock() }
    func remove(_ kq: Kqueue) { lock.lock(); all[ObjectIdentifier(kq)] = nil; lock.unlock() }
    var snapshot: [Kqueue] { lock.lock(); defer { lock.unlock() }; return Array(all.values) }

    func forget(_ waiter: PollWaiter) {
        for kq in snapshot {
            kq.lock.lock()
            kq.waiters.removeAll { $0 === waiter }
            kq.lock.unlock()
        }
    }
}

extension PipeSystem {
    /// `kqueue()`: a new kqueue descriptor.
    public func kqueue() throws(Errno) -> Int32 {
        let kq = Kqueue()
        let file = KqueueFile(kq: kq, cred: credential, zone: table.fileWords)
        let fd = try falloc(file, cloexec: false)
        kqueues.add(kq)
        return fd
    }

    /// `kevent(kq, changelist, nchanges, eventlist, nevents, timeout)`: applies `changes` in
    /// order, then returns up to `capacity` events, waiting up to `timeout` nanoseconds
    /// (nil: no limit, 0: poll). A change that fails, or asks for EV_RECEIPT, yields an
    /// EV_ERROR entry (data = errno or 0) while there is room, and no events are scanned
    /// then; a failing change with no room left throws its errno.
    public func kevent(_ kqfd: Int32, changes: [Kevent], capacity: Int,
                       timeout nanoseconds: Int?) throws(Errno) -> [Kevent] {
        guard capacity >= 0 else { throw .invalidArgument }
        // The events land in scratch space first (on the stack when small), so that a call that
        // returns none allocates nothing; Kevent is a plain value, so no initialization is owed.
        return try withUnsafeTemporaryAllocation(of: Kevent.self, capacity: capacity) { events in
            changes.withUnsafeBufferPointer { changes in
                Result { () throws(Errno) -> [Kevent] in
                    let n = try kevent(kqfd, changes: changes, events: events, timeout: nanoseconds)
                    return n == 0 ? [] : Array(events[0..<n])
                }
            }
        }.get()
    }

    /// `kevent` as the system call takes it: the events go into the caller's `events` (its
    /// count is `nevents`), and the number written comes back. Allocates nothing when it need
    /// not wait (events ready, or a zero timeout).
    public func kevent(_ kqfd: Int32, changes: UnsafeBufferPointer<Kevent>,
                       events: UnsafeMutableBufferPointer<Kevent>,
                       timeout nanoseconds: Int?) throws(Errno) -> Int {
        guard let fo = table.fget(kqfd) else { throw .badFileDescriptor }
        defer { fdrop(fo) }
        guard fo.f_type == .DTYPE_KQUEUE else { throw .badFileDescriptor }
        let kq = unsafeDowncast(fo, to: KqueueFile.self).kq
        var n = 0
        var nerrors = 0
        for change in changes {
            let error = kqueue_register(kq, change)
            if error != nil || change.flags & Kevent.EV_RECEIPT != 0 {
                if n >= events.count {
                    // No room for the entry: the kernel stops here and returns the error.
                    if let error { throw error }
                    return n
                }
                var entry = change
                entry.flags = Kevent.EV_ERROR
                entry.data = Int(error?.rawValue ?? 0)
                events[n] = entry
                n += 1
                nerrors += 1
            }
        }
        if nerrors > 0 || events.isEmpty { return n }
        return try kern_poll(timeout: nanoseconds) { (waiter, _) throws(Errno) -> Int in
            let found = kqueue_scan(kq, into: events)
            if found == 0, let waiter {
                kq.lock.lock()
                if !kq.waiters.contains(where: { $0 === waiter }) { kq.waiters.append(waiter) }
                let raced = !kq.active.isEmpty
                kq.lock.unlock()
                if raced { waiter.wake() }
            }
            return found
        }
    }

    /// `kqueue_register`: add, modify, enable, disable or delete one knote.
    private func kqueue_register(_ kq: Kqueue, _ kev: Kevent) -> Errno? {
        // Only the descriptor filters exist in this engine; the others (timers, signals,
        // processes) are refused as a filter this kernel lacks would be.
        guard kev.filter == Kevent.EVFILT_READ || kev.filter == Kevent.EVFILT_WRITE ||
                kev.filter == Kevent.EVFILT_VNODE || kev.filter == Kevent.EVFILT_AIO
        else { return .invalidArgument }
        // f_isfd: the descriptor is looked up first (EBADF), for EV_DELETE too.
        guard kev.ident <= UInt(Int32.max), let fo = table.fget(Int32(kev.ident)) else {
            return .badFileDescriptor
        }
        defer { fdrop(fo) }
        let fd = Int32(kev.ident)
        let key = Kqueue.KnoteKey(fd: fd, filter: kev.filter)
        kq.registerLock.lock()
        defer { kq.registerLock.unlock() }
        kq.lock.lock()
        let existing = kq.knotes[key]
        kq.lock.unlock()

        if kev.flags & Kevent.EV_DELETE != 0 {
            guard let kn = existing else { return .noSuchEntry }
            knote_drop(kn)
            return nil
        }
        var kn: Knote
        if let existing {
            kn = existing
            if kev.flags & Kevent.EV_ADD != 0 {
                kq.lock.lock()
                kn.udata = kev.udata
                kn.flags = (kn.flags & ~Kevent.storedFlags) | (kev.flags & Kevent.storedFlags)
                kn.fflags = kev.fflags
                kq.lock.unlock()
            }
        } else {
            guard kev.flags & Kevent.EV_ADD != 0 else { return .noSuchEntry }
            guard let fp = fo as? File else { return .invalidArgument }
            switch pipe_kqfilter(kq, fp, fd, kev) {
            case .success(let made): kn = made
            case .failure(let error): return error
            }
            kq.lock.lock()
            kq.knotes[key] = kn
            kq.lock.unlock()
        }
        if kev.flags & Kevent.EV_DISABLE != 0 {
            kq.lock.lock()
            kn.disabled = true
            kq.dequeue(kn)
            kq.lock.unlock()
            return nil
        }
        if kev.flags & Kevent.EV_ENABLE != 0 {
            kq.lock.lock()
            kn.disabled = false
            kq.lock.unlock()
        }
        // Registration (and enabling) evaluates the filter at once.
        kq.lock.lock()
        let pipe = kn.hook, pair = kn.hookPair, eof = kn.flags & Kevent.EV_EOF != 0
        kq.lock.unlock()
        if let pipe {
            pipe.PIPE_LOCK()
            if kn.hook === pipe { kn.activate() }
            pipe.PIPE_UNLOCK()
        } else if eof {
            kq.enqueue(kn)
        }
        _ = pair
        return nil
    }

    /// `pipe_kqfilter`: choose the filter and the knlist.
    private func pipe_kqfilter(_ kq: Kqueue, _ fp: File, _ fd: Int32, _ kev: Kevent) -> Result<Knote, Errno> {
        if kev.filter != Kevent.EVFILT_READ && kev.filter != Kevent.EVFILT_WRITE {
            // A named pipe hands the other filters to its vnode (`vnops.fo_kqfilter` ->
            // `vfs_kqfilter`): EVFILT_VNODE only; an anonymous pipe has none (EINVAL).
            guard let node = fp.vnode, kev.filter == Kevent.EVFILT_VNODE else { return .failure(.invalidArgument) }
            let kn = Knote(kq: kq, fd: fd, filter: kev.filter, ops: .vnode, fp: fp, kev: kev)
            node.vnodeLock.lock()
            kn.vnode = node                        // not yet visible to anyone else
            node.knotes.append(kn)                 // knlist_add(&vp->v_pollinfo->vpi_selinfo.si_note)
            node.vnodeLock.unlock()
            return .success(kn)
        }
        // If a filter is requested that is not supported by this file descriptor, don't
        // return an error, but also don't ever generate an event.
        if kev.filter == Kevent.EVFILT_READ && !fp.f_flag.contains(.FREAD) ||
            kev.filter == Kevent.EVFILT_WRITE && !fp.f_flag.contains(.FWRITE) {
            return .success(Knote(kq: kq, fd: fd, filter: kev.filter, ops: .notSupported, fp: fp, kev: kev))
        }
        var cpipe = fp.f_data
        cpipe.PIPE_LOCK()
        let ops: KnoteOps
        switch kev.filter {
        case Kevent.EVFILT_READ:
            ops = .read
        case Kevent.EVFILT_WRITE:
            ops = .write
            if cpipe.pipe_peer.pipe_present != .ACTIVE {
                // other end of pipe has been closed
                cpipe.PIPE_UNLOCK()
                return .failure(.brokenPipe)
            }
            cpipe = cpipe.PIPE_PEER
        default:
            cpipe.PIPE_UNLOCK()
            return .failure(.invalidArgument)
        }
        let kn = Knote(kq: kq, fd: fd, filter: kev.filter, ops: ops, fp: fp, kev: kev)
        kn.hook = cpipe                            // not yet visible to anyone else
        kn.hookPair = cpipe.pipe_pair
        cpipe.pipe_sel.notes.append(kn)            // knlist_add
        cpipe.PIPE_UNLOCK()
        return .success(kn)
    }

    /// Detach a knote from its pipe (`filt_pipedetach`) or node (`filt_vfsdetach`) and forget it.
    private func knote_drop(_ kn: Knote) {
        let kq = kn.kq
        kq.lock.lock()
        let node = kn.vnode
        kq.lock.unlock()
        if let node {
            node.vnodeLock.lock()
            kq.lock.lock()
            kn.vnode = nil
            kq.lock.unlock()
            node.knotes.removeAll { $0 === kn }
            node.vnodeLock.unlock()
        }
        kq.lock.lock()
        let pipe = kn.hook, pair = kn.hookPair
        kq.lock.unlock()
        if let pipe {
            pipe.PIPE_LOCK()
            kq.lock.lock()
            let attached = kn.hook === pipe
            if attached {
                kn.hook = nil
                kn.hookPair = nil
            }
            kq.lock.unlock()
            if attached { pipe.pipe_sel.notes.removeAll { $0 === kn } }   // knlist_remove
            pipe.PIPE_UNLOCK()
        }
        _ = pair                                  // the pair's mutex lived until here
        kq.lock.lock()
        kn.dropped = true
        kq.dequeue(kn)
        if kq.knotes[Kqueue.KnoteKey(fd: kn.fd, filter: kn.filter)] === kn {
            kq.knotes[Kqueue.KnoteKey(fd: kn.fd, filter: kn.filter)] = nil
        }
        kq.lock.unlock()
    }

    /// `kqueue_scan` without the sleep: report up to `events.count` active knotes into `events`,
    /// in order; returns how many.
    private func kqueue_scan(_ kq: Kqueue, into events: UnsafeMutableBufferPointer<Kevent>) -> Int {
        var n = 0
        let max = events.count
        // Like the kernel's marker knote: only what was active when the scan began is looked
        // at, so a level-triggered knote put back at the end is not reported twice.
        kq.lock.lock()
        var budget = kq.active.count
        kq.lock.unlock()
        while n < max && budget > 0 {
            budget -= 1
            kq.lock.lock()
            guard !kq.active.isEmpty else { kq.lock.unlock(); break }
            let kn = kq.active.remove(at: 0)   // (removeFirst() allocated in the debug build; this does not)
            kn.queued = false
            let pipe = kn.hook, pair = kn.hookPair
            kq.lock.unlock()
            defer { _ = pair }                   // keeps the pipe's mutex alive meanwhile

            pipe?.PIPE_LOCK()
            kq.lock.lock()
            if kn.dropped || kn.disabled {
                kq.lock.unlock()
                pipe?.PIPE_UNLOCK()
                continue
            }
            let oneshot = kn.flags & Kevent.EV_ONESHOT != 0
            // A one-shot knote is reported as it fired; the others are re-checked (level).
            var fires = true
            if !oneshot {
                kq.lock.unlock()
                fires = kn.ops == .vnode ? kn.fflags != 0 : pipe != nil && kn.hook === pipe && kn.event()
                kq.lock.lock()
            }
            if !fires {
                kq.lock.unlock()
                pipe?.PIPE_UNLOCK()
                continue
            }
            events[n] = Kevent(ident: UInt(kn.fd), filter: kn.filter,
                               flags: kn.flags, fflags: kn.fflags,
                               data: kn.data, udata: kn.udata)
            n += 1
            let drop = oneshot
            if !oneshot {
                if kn.flags & Kevent.EV_CLEAR != 0 {
                    kn.data = 0                        // EV_CLEAR: wait for the next event
                    kn.fflags = 0
                }
                if kn.flags & Kevent.EV_DISPATCH != 0 {
                    kn.disabled = true                 // EV_DISPATCH: off until EV_ENABLE
                } else if kn.flags & Kevent.EV_CLEAR == 0 && !kn.queued {
                    kn.queued = true                   // level-triggered: stays active
                    kq.active.append(kn)
                }
            }
            kq.lock.unlock()
            pipe?.PIPE_UNLOCK()
            if drop { knote_drop(kn) }
        }
        return n
    }

    /// `knote_fdclose`: the descriptor is being closed; its knotes go from every kqueue.
    /// Matched by file as well as number, so that a descriptor number reused meanwhile by
    /// another thread keeps its knotes.
    func knote_fdclose(_ fd: Int32, _ file: FileObject) {
        guard let file = file as? File else { return }
        for kq in kqueues.snapshot {
            kq.lock.lock()
            let doomed = kq.knotes.values.filter { $0.fd == fd && $0.fp === file }
            kq.lock.unlock()
            for kn in doomed { knote_drop(kn) }
        }
    }

    /// `kqueue_close`: drop every knote, forget the kqueue.
    func kqueue_close(_ kqf: KqueueFile) {
        let kq = kqf.kq
        kq.lock.lock()
        let all = Array(kq.knotes.values)
        kq.lock.unlock()
        for kn in all { knote_drop(kn) }
        kqueues.remove(kq)
    }

    /// `kqueue_poll`: a kqueue is readable while it has active knotes.
    func kqueue_poll(_ kqf: KqueueFile, _ events: Int16, _ waiter: PollWaiter?) -> Int16 {
        let kq = kqf.kq
        kq.lock.lock()
        defer { kq.lock.unlock() }
        if !kq.active.isEmpty {
            return events & (PollEvents.POLLIN | PollEvents.POLLRDNORM)
        }
        if let waiter, !kq.waiters.contains(where: { $0 === waiter }) { kq.waiters.append(waiter) }
        return 0
    }
}
