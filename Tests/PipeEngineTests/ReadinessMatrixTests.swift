import Foundation
import Glibc
import Testing
@testable import PipeEngine

// The readiness matrix: every pipe state, and for each descriptor involved, what
// poll, select and kqueue report — all from one expected row per (state, descriptor).
//
// The rows are derived by hand from FreeBSD's sys/kern/sys_pipe.c (freebsd-src at
// f4f56ff43dbd30930f4b018e39ba2b9abf84551f), never from running the engine:
//   pipe_poll        1459-1461  POLLIN: FREAD and (pipe_pages.cnt > 0 || pipe_buffer.cnt > 0)
//                    1463-1469  POLLOUT: FWRITE and (peer gone || peer EOF ||
//                               (!DIRECTW && (space >= PIPE_BUF || size == 0)))
//                    1471-1475  FIFO reader with f_pipegen == pipe_wgen and an input event
//                               asked for: POLLINIGNEOF
//                    1477-1484  EOF (not ignored): POLLIN|POLLRDNORM as asked (FREAD), and
//                               POLLHUP when the peer is gone or at EOF, asked for or not
//   filt_piperead    1787-1805  data = buffer.cnt, else pages.cnt; EOF (unless a FIFO reader
//                               with f_pipegen == pipe_wgen): EV_EOF, fires; else data > 0
//   filt_pipewrite   1809-1838  data = 0 under DIRECTW, else space (PIPE_BUF if size 0);
//                               peer gone or EOF: EV_EOF, fires; else data >= PIPE_BUF
//   pipe_kqfilter    1736-1743  READ without FREAD / WRITE without FWRITE: accepted, never fires
//                    1752-1756  WRITE when pipe_peer is not ACTIVE: EPIPE
//   pipe_ioctl       1398-1408  FIONREAD: 0 without FREAD; pages.cnt if any, else buffer.cnt
//   pipe_create      703-708, pipe_paircreate 391-394: fd[0]'s pipe 16384 bytes, fd[1]'s 4096
//   pipe_build_write_buffer 907-912, 926: pipe_pages.cnt = min(iov_len, buffer size), DIRECTW set
//   pipeclose        1669, 1683-1687: EOF on the closing end and on its peer; 1699, 1708: present != ACTIVE
// poll drops POLLOUT when POLLHUP is set; select asks pipe_poll for POLLRDNORM|POLLHUP|POLLERR
// (read), POLLWRNORM|POLLHUP|POLLERR (write), POLLRDBAND (except) (sys_generic.c's select flags). FreeBSD's selscan
// (sys_generic.c, outside the seed) makes ONE fo_poll call per descriptor with the flags of
// every set the descriptor is in OR-ed together (selflags), then sets a bit in each of those
// sets whose flags meet the result (selsetbits): `selectAll` is that call.

private typealias P = PollEvents
private let IN = P.POLLIN, OUT = P.POLLOUT, HUP = P.POLLHUP

/// What one kqueue filter does when registered on a descriptor in a state.
enum KQExpect: Equatable, CustomStringConvertible {
    /// Registered, not active.
    case silent
    /// Registered and active at once, with this data and EV_EOF or not.
    case fires(data: Int, eof: Bool)
    /// The registration fails.
    case refused(Errno)

    var description: String {
        switch self {
        case .silent: return "silent"
        case .fires(let data, let eof): return "fires(data: \(data)\(eof ? ", EV_EOF" : ""))"
        case .refused(let e): return "refused(\(e.name))"
        }
    }
}

/// Which select sets a descriptor ends up in.
struct SelectExpect: Equatable, CustomStringConvertible {
    var read: Bool, write: Bool, except: Bool
    var description: String { "r:\(read ? 1 : 0) w:\(write ? 1 : 0) x:\(except ? 1 : 0)" }
}

private func sel(_ read: Bool, _ write: Bool) -> SelectExpect {
    SelectExpect(read: read, write: write, except: false)   // pipe_poll never gives POLLRDBAND
}

/// One expected row: a descriptor in a state.
struct ReadinessRow {
    let fd: String
    /// poll with POLLIN|POLLOUT.
    let poll: Int16
    /// poll with no events at all (POLLHUP is reported anyway).
    let pollNoEvents: Int16
    /// select with the descriptor in one set at a time.
    let select: SelectExpect
    /// select with the descriptor in all three sets at once.
    let selectAll: SelectExpect
    let kqRead: KQExpect
    let kqWrite: KQExpect
    let fionread: Int
    /// The seed's lines that decide this row.
    let why: String

    init(_ fd: String, poll: Int16, none: Int16 = 0, select: SelectExpect, selectAll: SelectExpect? = nil,
         read: KQExpect, write: KQExpect, fionread: Int, why: String) {
        self.fd = fd
        self.poll = poll
        pollNoEvents = none
        self.select = select
        self.selectAll = selectAll ?? select
        kqRead = read
        kqWrite = write
        self.fionread = fionread
        self.why = why
    }
}

/// A state built on a fresh PipeSystem: its descriptors by name, and how to wind it down.
struct BuiltState {
    let sys: PipeSystem
    let fds: [String: Int32]
    var finish: () throws -> Void = {}
}

struct ReadinessCase: CustomStringConvertible, Sendable {
    let name: String
    let build: @Sendable () throws -> BuiltState
    let rows: [ReadinessRow]
    var description: String { name }
}

extension ReadinessRow: @unchecked Sendable {}

private func noResize() -> PipeConfiguration {
    var c = PipeConfiguration()
    c.piperesizeallowed = false
    return c
}

private let fd0 = "fd[0]", fd1 = "fd[1]"
private let BUF = DEFAULT_PIPE_SIZE          // pp_rpipe: fd[1] -> fd[0]
private let SMALL = DEFAULT_SMALL_PIPE_SIZE  // pp_wpipe: fd[0] -> fd[1]

private func anonymous(_ flags: Int32 = O_NONBLOCK,
                       _ setup: @escaping @Sendable (PipeSystem, Int32, Int32) throws -> [String: Int32]?)
    -> @Sendable () throws -> BuiltState {
    { @Sendable in
        let sys = try quietSystem(noResize())
        let (a, b) = try sys.pipe2(flags)
        let fds = try setup(sys, a, b) ?? [fd0: a, fd1: b]
        return BuiltState(sys: sys, fds: fds)
    }
}

let readinessCases: [ReadinessCase] = [
    ReadinessCase(name: "empty", build: anonymous { _, _, _ in nil }, rows: [
        ReadinessRow(fd0, poll: OUT, select: sel(false, true), read: .silent,
                     write: .fires(data: SMALL, eof: false), fionread: 0,
                     why: "1459-1461 nothing queued; 1463-1469 peer space 4096 >= PIPE_BUF; 1822-1827"),
        ReadinessRow(fd1, poll: OUT, select: sel(false, true), read: .silent,
                     write: .fires(data: BUF, eof: false), fionread: 0,
                     why: "1463-1469 peer space 16384; filt_pipewrite 1824"),
    ]),
    ReadinessCase(name: "data queued (100 bytes fd[1] -> fd[0])", build: anonymous { sys, _, b in
        _ = try sys.write(b, pattern(0..<100)); return nil
    }, rows: [
        ReadinessRow(fd0, poll: IN | OUT, select: sel(true, true), read: .fires(data: 100, eof: false),
                     write: .fires(data: SMALL, eof: false), fionread: 100,
                     why: "1460 buffer.cnt > 0; 1793, 1804"),
        ReadinessRow(fd1, poll: OUT, select: sel(false, true), read: .silent,
                     write: .fires(data: BUF - 100, eof: false), fionread: 0,
                     why: "1466 space 16284 >= PIPE_BUF; 1824"),
    ]),
    ReadinessCase(name: "full (non-blocking fill, no resize)", build: anonymous { sys, _, b in
        let n = try sys.write(b, pattern(0..<BUF))
        #expect(n == BUF); return nil
    }, rows: [
        ReadinessRow(fd0, poll: IN | OUT, select: sel(true, true), read: .fires(data: BUF, eof: false),
                     write: .fires(data: SMALL, eof: false), fionread: BUF, why: "1460; 1793"),
        ReadinessRow(fd1, poll: 0, select: sel(false, false), read: .silent, write: .silent, fionread: 0,
                     why: "1466 space 0 < PIPE_BUF; 1824 data 0, 1837 0 >= PIPE_BUF false"),
    ]),
    ReadinessCase(name: "half-drained, space PIPE_BUF - 1", build: anonymous { sys, a, b in
        _ = try sys.write(b, pattern(0..<BUF))
        #expect(try sys.read(a, count: PIPE_BUF - 1).count == PIPE_BUF - 1); return nil
    }, rows: [
        ReadinessRow(fd0, poll: IN | OUT, select: sel(true, true),
                     read: .fires(data: BUF - PIPE_BUF + 1, eof: false),
                     write: .fires(data: SMALL, eof: false), fionread: BUF - PIPE_BUF + 1, why: "1460; 1793"),
        ReadinessRow(fd1, poll: 0, select: sel(false, false), read: .silent, write: .silent, fionread: 0,
                     why: "1466 space 511 < PIPE_BUF; 1837"),
    ]),
    ReadinessCase(name: "half-drained, space PIPE_BUF", build: anonymous { sys, a, b in
        _ = try sys.write(b, pattern(0..<BUF))
        #expect(try sys.read(a, count: PIPE_BUF).count == PIPE_BUF); return nil
    }, rows: [
        ReadinessRow(fd0, poll: IN | OUT, select: sel(true, true),
                     read: .fires(data: BUF - PIPE_BUF, eof: false),
                     write: .fires(data: SMALL, eof: false), fionread: BUF - PIPE_BUF, why: "1460; 1793"),
        ReadinessRow(fd1, poll: OUT, select: sel(false, true), read: .silent,
                     write: .fires(data: PIPE_BUF, eof: false), fionread: 0,
                     why: "1466 space 512 >= PIPE_BUF; 1824, 1837"),
    ]),
    ReadinessCase(name: "peer closed with data", build: anonymous { sys, a, b in
        _ = try sys.write(b, pattern(0..<100))
        try sys.close(b)
        return [fd0: a]
    }, rows: [
        ReadinessRow(fd0, poll: IN | HUP, none: HUP, select: sel(true, true),
                     read: .fires(data: 100, eof: true), write: .refused(.brokenPipe), fionread: 100,
                     why: "1460 data; 1464 peer not ACTIVE -> POLLOUT, dropped with POLLHUP; 1477-1484 EOF -> IN, HUP; 1797-1802; 1752-1756 EPIPE"),
    ]),
    ReadinessCase(name: "peer closed without data", build: anonymous { sys, a, b in
        try sys.close(b)
        return [fd0: a]
    }, rows: [
        ReadinessRow(fd0, poll: IN | HUP, none: HUP, select: sel(true, true),
                     read: .fires(data: 0, eof: true), write: .refused(.brokenPipe), fionread: 0,
                     why: "1477-1484 EOF -> POLLIN from EOF, POLLHUP; 1797-1802 EV_EOF data 0; 1752-1756"),
    ]),
    ReadinessCase(name: "reader closed (fd[0] gone, data was queued to it)", build: anonymous { sys, a, b in
        _ = try sys.write(b, pattern(0..<100))
        try sys.close(a)
        return [fd1: b]
    }, rows: [
        ReadinessRow(fd1, poll: IN | HUP, none: HUP, select: sel(true, true),
                     read: .fires(data: 0, eof: true), write: .refused(.brokenPipe), fionread: 0,
                     why: "pipeclose sets EOF on fd[1]'s pipe; 1477-1484; 1797-1802; 1752-1756"),
    ]),
    ReadinessCase(name: "reverse direction (3 bytes fd[0] -> fd[1])", build: anonymous { sys, a, _ in
        _ = try sys.write(a, [1, 2, 3]); return nil
    }, rows: [
        ReadinessRow(fd0, poll: OUT, select: sel(false, true), read: .silent,
                     write: .fires(data: SMALL - 3, eof: false), fionread: 0,
                     why: "fd[0]'s own pipe empty; 1466 peer (4096-byte) space 4093; 1824"),
        ReadinessRow(fd1, poll: IN | OUT, select: sel(true, true), read: .fires(data: 3, eof: false),
                     write: .fires(data: BUF, eof: false), fionread: 3, why: "1460; 1793; 1824"),
    ]),
    ReadinessCase(name: "direct write in progress (12000 bytes held)", build: {
        let sys = try quietSystem(noResize())
        let (a, b) = try sys.pipe2()                 // blocking: the direct path is allowed
        let data = pattern(0..<12_000)
        let writer = TestThread { _ = try? sys.write(b, data) }
        #expect(try eventually { try sys.bytesReadable(a) > 0 }, "the direct write never started")
        var built = BuiltState(sys: sys, fds: [fd0: a, fd1: b])
        built.finish = {
            let got = try sys.readExactly(a, data.count)
            #expect(got == data)
            #expect(writer.join(timeout: 10))
        }
        return built
    }, rows: [
        ReadinessRow(fd0, poll: IN | OUT, select: sel(true, true), read: .fires(data: 12_000, eof: false),
                     write: .fires(data: SMALL, eof: false), fionread: 12_000,
                     why: "1460 pipe_pages.cnt > 0; 1794-1795 data = pages.cnt; 1404-1405"),
        ReadinessRow(fd1, poll: 0, select: sel(false, false), read: .silent, write: .silent, fionread: 0,
                     why: "1468 DIRECTW blocks POLLOUT; 1821-1822 data 0 under DIRECTW"),
    ]),
    // FIFOs: one pipe, its own peer (PIPE_PEER 143-144), reader O_RDONLY, writer O_WRONLY.
    ReadinessCase(name: "FIFO: reader alone, no writer yet", build: {
        let sys = try quietSystem(noResize())
        try sys.mkfifo("f", 0o600)
        return BuiltState(sys: sys, fds: ["reader": try sys.open("f", O_RDONLY | O_NONBLOCK)])
    }, rows: [
        ReadinessRow("reader", poll: 0, select: sel(false, false), read: .silent, write: .silent,
                     fionread: 0,
                     why: "first reader clears EOF; f_pipegen 0 == pipe_wgen 0 (1471-1475); 1742 WRITE without FWRITE never fires"),
    ]),
    ReadinessCase(name: "FIFO: a writer came and left", build: {
        let sys = try quietSystem(noResize())
        try sys.mkfifo("f", 0o600)
        let rd = try sys.open("f", O_RDONLY | O_NONBLOCK)
        try sys.close(try sys.open("f", O_WRONLY | O_NONBLOCK))
        return BuiltState(sys: sys, fds: ["reader": rd])
    }, rows: [
        ReadinessRow("reader", poll: IN | HUP, none: HUP, select: sel(true, true),
                     read: .fires(data: 0, eof: true), write: .silent, fionread: 0,
                     why: "last writer: EOF, pipe_wgen 1 != f_pipegen 0; 1477-1484 (peer is itself, at EOF); 1797-1802; select write: POLLHUP"),
    ]),
    ReadinessCase(name: "FIFO: new reader after the last writer left", build: {
        let sys = try quietSystem(noResize())
        try sys.mkfifo("f", 0o600)
        let first = try sys.open("f", O_RDONLY | O_NONBLOCK)
        try sys.close(try sys.open("f", O_WRONLY | O_NONBLOCK))
        let second = try sys.open("f", O_RDONLY | O_NONBLOCK)    // 2nd reader: EOF stays set
        return BuiltState(sys: sys, fds: ["first reader": first, "new reader": second])
    }, rows: [
        ReadinessRow("first reader", poll: IN | HUP, none: HUP, select: sel(true, true),
                     read: .fires(data: 0, eof: true), write: .silent, fionread: 0,
                     why: "f_pipegen 0 != pipe_wgen 1: EOF seen"),
        // f_pipegen = pipe_wgen - writers = 1 == pipe_wgen. POLLINIGNEOF is added only when an
        // input event is asked for (1471-1475): poll(POLLIN|POLLOUT) and the read/except sets
        // ignore EOF, but poll with no events and the write set alone (no input event) see
        // POLLHUP (1477-1484). With all three sets at once selscan asks once, with POLLRDNORM
        // among the flags: EOF ignored, no set.
        ReadinessRow("new reader", poll: 0, none: HUP, select: sel(false, true),
                     selectAll: sel(false, false), read: .silent, write: .silent, fionread: 0,
                     why: "1471-1475 vs 1477-1484; filt_piperead 1797-1799 f_pipegen == pipe_wgen -> 1804 data 0"),
    ]),
    ReadinessCase(name: "FIFO: reader and writer, 100 bytes queued", build: {
        let sys = try quietSystem(noResize())
        try sys.mkfifo("f", 0o600)
        let rd = try sys.open("f", O_RDONLY | O_NONBLOCK)
        let wr = try sys.open("f", O_WRONLY | O_NONBLOCK)
        _ = try sys.write(wr, pattern(0..<100))
        return BuiltState(sys: sys, fds: ["reader": rd, "writer": wr])
    }, rows: [
        ReadinessRow("reader", poll: IN, select: sel(true, false), read: .fires(data: 100, eof: false),
                     write: .silent, fionread: 100, why: "1460; no FWRITE: 1463 skipped; 1742"),
        ReadinessRow("writer", poll: OUT, select: sel(false, true), read: .silent,
                     write: .fires(data: BUF - 100, eof: false), fionread: 0,
                     why: "1466 (peer = itself) space 16284; 1738 READ without FREAD; 1400 FIONREAD 0"),
    ]),
]

@Suite("ReadinessMatrix: poll, select and kqueue over every pipe state")
struct ReadinessMatrixTests {
    func pollOnce(_ sys: PipeSystem, _ fd: Int32, _ events: Int16) throws -> Int16 {
        var fds = [PollFD(fd: fd, events: events)]
        let n = try sys.poll(&fds, timeout: 0)
        #expect(n == (fds[0].revents != 0 ? 1 : 0))
        return fds[0].revents
    }

    func selectOnce(_ sys: PipeSystem, _ fd: Int32, read: Bool, write: Bool, except: Bool) throws -> SelectExpect {
        var rd: Set<Int32> = read ? [fd] : [], wr: Set<Int32> = write ? [fd] : []
        var ex: Set<Int32> = except ? [fd] : []
        let n = try sys.select(read: &rd, write: &wr, except: &ex, timeout: 0)
        #expect(n == rd.count + wr.count + ex.count)
        return SelectExpect(read: rd.contains(fd), write: wr.contains(fd), except: ex.contains(fd))
    }

    /// Registers EVFILT_READ and EVFILT_WRITE on `fd` in a fresh kqueue and reports each.
    func kqueueFilters(_ sys: PipeSystem, _ fd: Int32) throws -> (read: KQExpect, write: KQExpect) {
        let kq = try sys.kqueue()
        defer { try? sys.close(kq) }
        var registered: [Int16: Errno?] = [:]
        for filter in [Kevent.EVFILT_READ, Kevent.EVFILT_WRITE] {
            do {
                _ = try sys.kevent(kq, changes: [Kevent(ident: UInt(fd), filter: filter, flags: Kevent.EV_ADD)],
                                   capacity: 0, timeout: 0)
                registered[filter] = .some(nil)
            } catch {
                registered[filter] = .some(error)
            }
        }
        let events = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(events.allSatisfy { $0.ident == UInt(fd) })
        func outcome(_ filter: Int16) -> KQExpect {
            if case .some(.some(let error)) = registered[filter] { return .refused(error) }
            let mine = events.filter { $0.filter == filter }
            #expect(mine.count <= 1)
            guard let ev = mine.first else { return .silent }
            return .fires(data: ev.data, eof: ev.flags & Kevent.EV_EOF != 0)
        }
        return (outcome(Kevent.EVFILT_READ), outcome(Kevent.EVFILT_WRITE))
    }

    @Test(arguments: readinessCases)
    func matrix(_ c: ReadinessCase) throws {
        let built = try c.build()
        let sys = built.sys
        #expect(Set(c.rows.map(\.fd)) == Set(built.fds.keys), "rows and descriptors of \(c.name)")
        for row in c.rows {
            guard let fd = built.fds[row.fd] else { continue }
            let at = "\(c.name) / \(row.fd) [seed: \(row.why)]"
            let pollRevents = try pollOnce(sys, fd, IN | OUT)
            #expect(pollRevents == row.poll, "poll(POLLIN|POLLOUT) \(at)")
            let pollNone = try pollOnce(sys, fd, 0)
            #expect(pollNone == row.pollNoEvents, "poll(0) \(at)")
            let alone = SelectExpect(
                read: try selectOnce(sys, fd, read: true, write: false, except: false).read,
                write: try selectOnce(sys, fd, read: false, write: true, except: false).write,
                except: try selectOnce(sys, fd, read: false, write: false, except: true).except)
            #expect(alone == row.select, "select, one set at a time, \(at)")
            let all = try selectOnce(sys, fd, read: true, write: true, except: true)
            #expect(all == row.selectAll, "select, all three sets at once, \(at)")
            let kq = try kqueueFilters(sys, fd)
            #expect(kq.read == row.kqRead, "EVFILT_READ \(at)")
            #expect(kq.write == row.kqWrite, "EVFILT_WRITE \(at)")
            #expect(try sys.bytesReadable(fd) == row.fionread, "FIONREAD \(at)")
        }
        try built.finish()
    }

    // MARK: - waiters woken by a change of state

    enum Mechanism: String, CaseIterable, Sendable { case poll, select, kevent }
    enum Change: String, CaseIterable, Sendable {
        /// Nothing -> readable: a write reaches an empty fd[0].
        case becomesReadable
        /// Nothing -> hung up: fd[1], whose direction is full, loses its peer fd[0].
        case hangsUp
    }

    struct Outcome: Sendable {
        var n = 0
        var revents: Int16 = 0
        var sets = SelectExpect(read: false, write: false, except: false)
        var events: [Kevent] = []
    }

    /// True once a poll/select waiter is recorded on fd's own pipe (selrecord).
    func pollerRecorded(_ sys: PipeSystem, _ fd: Int32) -> Bool {
        guard let pipe = sys.pipeForTesting(fd) else { return false }
        pipe.PIPE_LOCK()
        defer { pipe.PIPE_UNLOCK() }
        return pipe.pipe_sel.SEL_WAITING
    }

    /// True once a kevent waiter is waiting on the kqueue.
    func keventWaiting(_ sys: PipeSystem, _ kqfd: Int32) -> Bool {
        guard let fo = sys.table.fget(kqfd) else { return false }
        defer { sys.fdrop(fo) }
        guard let kqf = fo as? KqueueFile else { return false }
        kqf.kq.lock.lock()
        defer { kqf.kq.lock.unlock() }
        return !kqf.kq.waiters.isEmpty
    }

    @Test(arguments: Mechanism.allCases, Change.allCases)
    func waiterIsWoken(_ mechanism: Mechanism, _ change: Change) throws {
        let sys = try quietSystem(noResize())
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        let fd: Int32
        switch change {
        case .becomesReadable:
            fd = r
        case .hangsUp:
            #expect(try sys.write(w, pattern(0..<BUF)) == BUF)    // fd[1]: no POLLOUT, nothing to read
            fd = w
        }
        // The events asked for: only what is "nothing" now.
        let pollEvents: Int16 = change == .becomesReadable ? IN : IN | OUT
        let kq = try sys.kqueue()
        let filters = change == .hangsUp ? [Kevent.EVFILT_READ, Kevent.EVFILT_WRITE] : [Kevent.EVFILT_READ]
        _ = try sys.kevent(kq, changes: filters.map { Kevent(ident: UInt(fd), filter: $0, flags: Kevent.EV_ADD) },
                           capacity: 0, timeout: 0)
        // Nothing is ready before the change.
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 0).isEmpty)
        var probe = [PollFD(fd: fd, events: pollEvents)]
        #expect(try sys.poll(&probe, timeout: 0) == 0)

        let result = Locked<Outcome?>(nil)
        let waiter = TestThread {
            var out = Outcome()
            do {
                switch mechanism {
                case .poll:
                    var fds = [PollFD(fd: fd, events: pollEvents)]
                    out.n = try sys.poll(&fds, timeout: Int32(10_000 * TestThread.timeScale))
                    out.revents = fds[0].revents
                case .select:
                    var rd: Set<Int32> = [fd], wr: Set<Int32> = change == .hangsUp ? [fd] : [], ex: Set<Int32> = [fd]
                    out.n = try sys.select(read: &rd, write: &wr, except: &ex, timeout: Int(1e10 * TestThread.timeScale))
                    out.sets = SelectExpect(read: rd.contains(fd), write: wr.contains(fd), except: ex.contains(fd))
                case .kevent:
                    // A close activates the knotes one after the other: collect until each
                    // filter has reported (bounded).
                    for _ in 0..<4 {
                        out.events += try sys.kevent(kq, changes: [], capacity: 8, timeout: Int(1e10 * TestThread.timeScale))
                        if Set(out.events.map(\.filter)) == Set(filters) { break }
                    }
                    out.n = out.events.count
                }
            } catch {
                out.n = -1
            }
            result.withLock { $0 = out }
        }
        // Change the state only once the waiter is recorded, so that the wake-up path (not the
        // first scan) delivers the result.
        let recorded = eventually {
            mechanism == .kevent ? keventWaiting(sys, kq) : pollerRecorded(sys, fd)
        }
        #expect(recorded, "\(mechanism) waiter never went to sleep")
        #expect(result.get == nil, "\(mechanism) returned before the change")
        switch change {
        case .becomesReadable: #expect(try sys.write(w, [1, 2, 3, 4, 5, 6, 7]) == 7)
        case .hangsUp: try sys.close(r)
        }
        #expect(waiter.join(timeout: 15), "\(mechanism) waiter was not woken")
        guard let out = result.get else { return }
        let label = "\(mechanism) / \(change)"
        switch (mechanism, change) {
        case (.poll, .becomesReadable):
            #expect(out.n == 1 && out.revents == IN, "\(label)")
        case (.poll, .hangsUp):
            // 1464-1465 peer not ACTIVE / EOF -> POLLOUT; 1477-1484 EOF -> POLLIN, POLLHUP;
            // POLLOUT dropped with POLLHUP.
            #expect(out.n == 1 && out.revents == IN | HUP, "\(label)")
        case (.select, .becomesReadable):
            #expect(out.n == 1 && out.sets == sel(true, false), "\(label)")
        case (.select, .hangsUp):
            #expect(out.n == 2 && out.sets == sel(true, true), "\(label)")
        case (.kevent, .becomesReadable):
            #expect(out.events.count == 1, "\(label)")
            if let ev = out.events.first {
                #expect(ev.filter == Kevent.EVFILT_READ && ev.ident == UInt(r) && ev.data == 7 &&
                        ev.flags & Kevent.EV_EOF == 0, "\(label)")
            }
        case (.kevent, .hangsUp):
            // EVFILT_READ on fd[1]: its own pipe at EOF (1797-1802), nothing queued: data 0.
            // EVFILT_WRITE hangs on fd[0]'s pipe: EV_EOF from the filter (1832-1836) or from
            // knlist_clear; its data is not asserted (it depends on which reported it).
            let read = out.events.filter { $0.filter == Kevent.EVFILT_READ }
            let write = out.events.filter { $0.filter == Kevent.EVFILT_WRITE }
            #expect(!read.isEmpty && read.allSatisfy { $0.flags & Kevent.EV_EOF != 0 && $0.data == 0 }, "\(label)")
            #expect(!write.isEmpty && write.allSatisfy { $0.flags & Kevent.EV_EOF != 0 }, "\(label)")
        }
        try? sys.close(kq)
    }
}
