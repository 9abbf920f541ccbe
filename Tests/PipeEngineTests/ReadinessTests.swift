import CPipeSys
import Foundation
import Glibc
import Testing
@testable import PipeEngine

private typealias P = PollEvents
private let IN = P.POLLIN, OUT = P.POLLOUT, HUP = P.POLLHUP

@Suite("pipe_poll, select, kqueue: the readiness of every state")
struct ReadinessTests {
    func revents(_ sys: PipeSystem, _ fd: Int32, _ events: Int16 = IN | OUT) throws -> Int16 {
        var fds = [PollFD(fd: fd, events: events)]
        _ = try sys.poll(&fds, timeout: 0)
        return fds[0].revents
    }

    func noResize() -> PipeConfiguration {
        var c = PipeConfiguration()
        c.piperesizeallowed = false
        return c
    }

    @Test func pollThroughThePipesStates() throws {
        let sys = try quietSystem(noResize())
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        // Empty: both ends writable (each writes into its peer's empty buffer), none readable.
        #expect(try revents(sys, r) == OUT)
        #expect(try revents(sys, w) == OUT)
        // Data fd[1] -> fd[0].
        _ = try sys.write(w, pattern(0..<100))
        #expect(try revents(sys, r) == IN | OUT)
        #expect(try revents(sys, r, P.POLLRDNORM) == P.POLLRDNORM)
        // Full: fd[1] is not writable.
        _ = try sys.write(w, pattern(0..<(16384 - 100)))
        #expect(try revents(sys, w) == 0)
        // Half-drained across the PIPE_BUF threshold.
        _ = try sys.read(r, count: PIPE_BUF - 1)
        #expect(try revents(sys, w) == 0)
        _ = try sys.read(r, count: 1)
        #expect(try revents(sys, w) == OUT)
        // Reverse direction: fd[0] -> fd[1].
        _ = try sys.write(r, [1, 2, 3])
        #expect(try revents(sys, w) == IN | OUT)
        // Peer closed with data: readable and hung up; POLLOUT dropped with POLLHUP.
        try sys.close(w)
        #expect(try revents(sys, r) == IN | HUP)
        // POLLHUP is reported even when not asked for.
        #expect(try revents(sys, r, 0) == HUP)
        _ = try sys.readExactly(r, 16384 - PIPE_BUF)
        // Peer closed without data: EOF is readable.
        #expect(try revents(sys, r) == IN | HUP)
    }

    @Test func pollNvalNegativeAndCount() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, [1])
        var fds = [PollFD(fd: r, events: IN), PollFD(fd: -1, events: IN), PollFD(fd: 99, events: IN),
                   PollFD(fd: w, events: IN)]
        #expect(try sys.poll(&fds, timeout: 0) == 2)
        #expect(fds.map(\.revents) == [IN, 0, P.POLLNVAL, 0])
        expectErrno(.invalidArgument) { try sys.poll(&fds, timeout: -2) }
    }

    @Test func pollTimeoutsAndWakeups() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        var fds = [PollFD(fd: r, events: IN)]
        let start = pb_monotonic_ns()
        #expect(try sys.poll(&fds, timeout: 30) == 0)
        #expect(pb_monotonic_ns() - start >= 29_000_000)      // never early
        // Infinite timeout, woken by a write from another thread.
        let writer = TestThread { usleep(20_000); _ = try! sys.write(w, [9]) }
        #expect(try sys.poll(&fds, timeout: -1) == 1)
        #expect(fds[0].revents == IN)
        #expect(writer.join())
        _ = try sys.read(r, count: 1)
        // Interrupted: EINTR, even with restart semantics (poll is never restarted).
        let me = EngineThread.current
        let interrupter = TestThread { usleep(20_000); me.interrupt(restart: true) }
        expectErrno(.interrupted) { try sys.poll(&fds, timeout: -1) }
        #expect(interrupter.join())
        // A close of the peer wakes a poller with POLLHUP.
        let closer = TestThread { usleep(20_000); try! sys.close(w) }
        #expect(try sys.poll(&fds, timeout: Int32(5000 * TestThread.timeScale)) == 1)
        #expect(fds[0].revents == IN | HUP)
        #expect(closer.join())
    }

    @Test func selectTreatsAHungUpPipeAsReadableAndWritable() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        var rd: Set<Int32> = [r], wr: Set<Int32> = [r, w], ex: Set<Int32> = []
        #expect(try sys.select(read: &rd, write: &wr, except: &ex, timeout: 0) == 2)
        #expect(rd.isEmpty && wr == [r, w])
        try sys.close(w)
        rd = [r]; wr = [r]; ex = [r]
        #expect(try sys.select(read: &rd, write: &wr, except: &ex, timeout: 0) == 2)
        #expect(rd == [r] && wr == [r] && ex.isEmpty)
        rd = [r, w]; wr = []; ex = []
        expectErrno(.badFileDescriptor) { try sys.select(read: &rd, write: &wr, except: &ex, timeout: 0) }
    }

    // MARK: kqueue

    func kev(_ fd: Int32, _ filter: Int16, _ flags: UInt16, udata: UInt = 0) -> Kevent {
        Kevent(ident: UInt(fd), filter: filter, flags: flags, udata: udata)
    }
    let READ = Kevent.EVFILT_READ, WRITE = Kevent.EVFILT_WRITE

    @Test func readFilterIsLevelTriggeredWithData() throws {
        let sys = try quietSystem()
        let kq = try sys.kqueue()
        let (r, w) = try sys.pipe2()
        #expect(try sys.kevent(kq, changes: [kev(r, READ, Kevent.EV_ADD, udata: 7)], capacity: 8, timeout: 0).isEmpty)
        _ = try sys.write(w, pattern(0..<100))
        var ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(ev.count == 1 && ev[0].data == 100 && ev[0].udata == 7 && ev[0].ident == UInt(r))
        ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)    // still ready
        #expect(ev.count == 1 && ev[0].data == 100)
        _ = try sys.read(r, count: 100)
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 0).isEmpty)
    }

    @Test func clearOneshotDisableEnable() throws {
        let sys = try quietSystem()
        let kq = try sys.kqueue()
        let (r, w) = try sys.pipe2()
        _ = try sys.kevent(kq, changes: [kev(r, READ, Kevent.EV_ADD | Kevent.EV_CLEAR)], capacity: 0, timeout: 0)
        _ = try sys.write(w, [1, 2, 3])
        var ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(ev.count == 1 && ev[0].data == 3)
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 0).isEmpty)   // cleared
        _ = try sys.write(w, [4])
        ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(ev.count == 1 && ev[0].data == 4)

        // One-shot: reported once, then gone.
        let (r2, w2) = try sys.pipe2()
        _ = try sys.kevent(kq, changes: [kev(r2, READ, Kevent.EV_ADD | Kevent.EV_ONESHOT)], capacity: 0, timeout: 0)
        _ = try sys.write(w2, [1])
        ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(ev.map(\.ident) == [UInt(r2)])
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 0).isEmpty)
        ev = try sys.kevent(kq, changes: [kev(r2, READ, Kevent.EV_DELETE)], capacity: 8, timeout: 0)
        #expect(ev.count == 1 && ev[0].flags == Kevent.EV_ERROR && ev[0].data == Int(ENOENT))

        // Disabled knotes are not reported; enabling evaluates the filter at once.
        let (r3, w3) = try sys.pipe2()
        _ = try sys.write(w3, [1])
        _ = try sys.kevent(kq, changes: [kev(r3, READ, Kevent.EV_ADD | Kevent.EV_DISABLE)], capacity: 0, timeout: 0)
        ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(!ev.contains { $0.ident == UInt(r3) })
        ev = try sys.kevent(kq, changes: [kev(r3, READ, Kevent.EV_ENABLE)], capacity: 8, timeout: 0)
        #expect(ev.contains { $0.ident == UInt(r3) && $0.data == 1 })
    }

    @Test func writeFilterThresholdAndData() throws {
        let sys = try quietSystem(noResize())
        let kq = try sys.kqueue()
        let (r, w) = try sys.pipe2(O_NONBLOCK)
        var ev = try sys.kevent(kq, changes: [kev(w, WRITE, Kevent.EV_ADD)], capacity: 8, timeout: 0)
        #expect(ev.count == 1 && ev[0].data == 16384)     // space in pp_rpipe
        _ = try sys.write(w, pattern(0..<(16384 - PIPE_BUF + 1)))
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 0).isEmpty)   // 511 < PIPE_BUF
        _ = try sys.read(r, count: 1)
        ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(ev.count == 1 && ev[0].data == PIPE_BUF)
    }

    @Test func receiptsAndRegistrationErrors() throws {
        let sys = try quietSystem()
        let kq = try sys.kqueue()
        let (r, w) = try sys.pipe2()
        let ev = try sys.kevent(kq, changes: [
            kev(r, READ, Kevent.EV_ADD | Kevent.EV_RECEIPT),
            kev(77, READ, Kevent.EV_ADD),
            kev(r, Kevent.EVFILT_VNODE, Kevent.EV_ADD),
            kev(w, READ, Kevent.EV_DELETE),
        ], capacity: 8, timeout: 0)
        #expect(ev.map(\.flags) == [Kevent.EV_ERROR, Kevent.EV_ERROR, Kevent.EV_ERROR, Kevent.EV_ERROR])
        #expect(ev.map(\.data) == [0, Int(EBADF), Int(EINVAL), Int(ENOENT)])
        // With no room for an error entry, the error is thrown.
        expectErrno(.badFileDescriptor) { try sys.kevent(kq, changes: [kev(77, READ, Kevent.EV_ADD)], capacity: 0, timeout: 0) }
        // A write filter whose reader is gone: EPIPE.
        try sys.close(r)
        expectErrno(.brokenPipe) { try sys.kevent(kq, changes: [kev(w, WRITE, Kevent.EV_ADD)], capacity: 0, timeout: 0) }
        expectErrno(.badFileDescriptor) { try sys.kevent(w, changes: [], capacity: 1, timeout: 0) }
    }

    @Test func closingAnEndTurnsKnotesIntoEOFOneshots() throws {
        let sys = try quietSystem()
        let kq = try sys.kqueue()
        let (r, w) = try sys.pipe2()
        _ = try sys.kevent(kq, changes: [kev(w, WRITE, Kevent.EV_ADD | Kevent.EV_CLEAR),
                                         kev(r, READ, Kevent.EV_ADD)], capacity: 0, timeout: 0)
        _ = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)   // the initial write event
        try sys.close(r)     // the write knote hangs on fd[0]'s pipe: knlist_clear
        let ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(ev.count == 1)
        #expect(ev[0].ident == UInt(w) && ev[0].filter == WRITE)
        #expect(ev[0].flags & Kevent.EV_EOF != 0 && ev[0].flags & Kevent.EV_ONESHOT != 0)
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 0).isEmpty)
        // The read knote on fd[0] went with its descriptor (knote_fdclose); deleting it now
        // finds no descriptor at all: EBADF, as kqueue_register looks the fd up first.
        let gone = try sys.kevent(kq, changes: [kev(r, READ, Kevent.EV_DELETE)], capacity: 8, timeout: 0)
        #expect(gone.first?.data == Int(EBADF))

        let (r2, w2) = try sys.pipe2()
        _ = try sys.kevent(kq, changes: [kev(r2, READ, Kevent.EV_ADD)], capacity: 0, timeout: 0)
        try sys.close(w2)    // the peer leaves: EV_EOF from the filter, not one-shot
        let eof = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
        #expect(eof.count == 1 && eof[0].flags & Kevent.EV_EOF != 0 && eof[0].flags & Kevent.EV_ONESHOT == 0)
    }

    @Test func activationOrderAndBlockingWait() throws {
        let sys = try quietSystem()
        let kq = try sys.kqueue()
        let (a, aw) = try sys.pipe2()
        let (b, bw) = try sys.pipe2()
        _ = try sys.kevent(kq, changes: [kev(a, READ, Kevent.EV_ADD), kev(b, READ, Kevent.EV_ADD)], capacity: 0, timeout: 0)
        _ = try sys.write(bw, [1])
        _ = try sys.write(aw, [1])
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 0).map(\.ident) == [UInt(b), UInt(a)])
        _ = try sys.read(a, count: 1); _ = try sys.read(b, count: 1)
        // Woken by an event.
        let writer = TestThread { usleep(20_000); _ = try! sys.write(aw, [2]) }
        let ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: nil)
        #expect(ev.map(\.ident) == [UInt(a)])
        #expect(writer.join())
        _ = try sys.read(a, count: 1)
        // By its timeout.
        #expect(try sys.kevent(kq, changes: [], capacity: 8, timeout: 20_000_000).isEmpty)
        // By an interruption.
        let me = EngineThread.current
        let interrupter = TestThread { usleep(20_000); me.interrupt() }
        expectErrno(.interrupted) { try sys.kevent(kq, changes: [], capacity: 8, timeout: nil) }
        #expect(interrupter.join())
        // A kqueue is itself pollable.
        _ = try sys.write(bw, [3])
        var fds = [PollFD(fd: kq, events: IN)]
        #expect(try sys.poll(&fds, timeout: 0) == 1)
        try sys.close(kq)
        expectErrno(.badFileDescriptor) { try sys.kevent(kq, changes: [], capacity: 1, timeout: 0) }
    }

    /// A poll loop serving many pipes, fed by many writer threads: every byte arrives and no
    /// wake-up is lost (the loop has a bounded wait and must still finish).
    @Test func pollLoopServesManyPipes() throws {
        let sys = try quietSystem()
        let pipes = try (0..<16).map { _ in try sys.pipe2(O_NONBLOCK) }
        let perPipe = 200_000
        var writers: [TestThread] = []
        for (i, p) in pipes.enumerated() {
            writers.append(TestThread {
                var sent = 0
                var fds = [PollFD(fd: p.1, events: OUT)]
                while sent < perPipe {
                    let n = min(perPipe - sent, 1 + (sent * 31 + i) % 3000)
                    do {
                        sent += try sys.write(p.1, pattern(sent..<(sent + n), seed: UInt8(i)))
                    } catch {
                        _ = try! sys.poll(&fds, timeout: -1)
                    }
                }
                try! sys.close(p.1)
            })
        }
        var received = [[UInt8]](repeating: [], count: pipes.count)
        var open = Set(0..<pipes.count)
        let deadline = pb_monotonic_ns() + Int64(120e9 * TestThread.timeScale)
        while !open.isEmpty && pb_monotonic_ns() < deadline {
            var fds = open.sorted().map { PollFD(fd: pipes[$0].0, events: IN) }
            let n = try sys.poll(&fds, timeout: Int32(10_000 * TestThread.timeScale))
            #expect(n > 0, "a poll that should have been woken timed out")
            for f in fds where f.revents != 0 {
                let i = pipes.firstIndex { $0.0 == f.fd }!
                let chunk = try sys.read(f.fd, count: 65536)
                if chunk.isEmpty { open.remove(i) } else { received[i] += chunk }
            }
        }
        for t in writers { #expect(t.join()) }
        for (i, bytes) in received.enumerated() {
            #expect(bytes == pattern(0..<perPipe, seed: UInt8(i)))
        }
    }

    // MARK: regressions found in review

    /// A poller asleep on a pipe whose both ends close must wake and return, not touch the
    /// freed pair.
    @Test func pollerOutlivesBothEnds() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let result = Locked<Int?>(nil)
        let poller = TestThread {
            var fds = [PollFD(fd: r, events: IN)]
            let n = try! sys.poll(&fds, timeout: 5000)
            result.withLock { $0 = n }
        }
        usleep(20_000)
        try sys.close(r)
        try sys.close(w)
        #expect(poller.join())
        #expect(result.get != nil)
    }

    /// Two threads adding the same knote at once end with one knote, reported once, and
    /// nothing left behind when the kqueue closes.
    @Test func concurrentAddsMakeOneKnote() throws {
        for _ in 0..<50 {
            let sys = try quietSystem()
            let kq = try sys.kqueue()
            let (r, w) = try sys.pipe2()
            let adders = (0..<2).map { _ in
                TestThread { _ = try! sys.kevent(kq, changes: [Kevent(ident: UInt(r), filter: Kevent.EVFILT_READ, flags: Kevent.EV_ADD)], capacity: 0, timeout: 0) }
            }
            for a in adders { #expect(a.join()) }
            _ = try sys.write(w, [1])
            let ev = try sys.kevent(kq, changes: [], capacity: 8, timeout: 0)
            #expect(ev.count == 1)
            #expect(sys.pipeForTesting(r)!.pipe_sel.notes.count == 1)
            try sys.close(kq)
            #expect(sys.pipeForTesting(r)!.pipe_sel.notes.isEmpty)
            _ = try sys.write(w, [2])                      // no knote to wake any more
        }
    }

    @Test func pollwrnormGoesWithPollout() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        try sys.close(r)
        #expect(try revents(sys, w, P.POLLWRNORM | OUT) == HUP)
    }

    @Test func receiptWithNoRoomStopsTheChangelist() throws {
        let sys = try quietSystem()
        let kq = try sys.kqueue()
        let (a, _) = try sys.pipe2()
        let (b, _) = try sys.pipe2()
        let (c, _) = try sys.pipe2()
        let ev = try sys.kevent(kq, changes: [kev(a, READ, Kevent.EV_ADD | Kevent.EV_RECEIPT),
                                              kev(b, READ, Kevent.EV_ADD | Kevent.EV_RECEIPT),
                                              kev(c, READ, Kevent.EV_ADD)],
                                capacity: 1, timeout: 0)
        #expect(ev.count == 1 && ev[0].ident == UInt(a))
        // The second change was applied (its receipt had no room) and processing stopped
        // there: the third was not.
        let del = try sys.kevent(kq, changes: [kev(b, READ, Kevent.EV_DELETE | Kevent.EV_RECEIPT),
                                               kev(c, READ, Kevent.EV_DELETE)], capacity: 2, timeout: 0)
        #expect(del.map(\.data) == [0, Int(ENOENT)])
    }
}
