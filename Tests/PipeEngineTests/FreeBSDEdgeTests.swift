import Foundation
import CPipeSys
import Glibc
import Testing
@testable import PipeEngine

/// What FreeBSD does around sys_pipe.c, at the edges a FreeBSD program observes: each test
/// asserts the value FreeBSD gives (the layer that gives it is named).
@Suite struct FreeBSDEdgeTests {
    typealias P = PollEvents
    let READ = Kevent.EVFILT_READ, WRITE = Kevent.EVFILT_WRITE

    func kev(_ fd: Int32, _ filter: Int16, _ flags: UInt16) -> Kevent {
        Kevent(ident: UInt(fd), filter: filter, flags: flags)
    }

    /// kern_event.c: `kqueue_register` keeps the caller's flags but EV_ADD, EV_DELETE,
    /// EV_ENABLE, EV_DISABLE and EV_FORCEONESHOT, and `kqueue_scan` returns them with the
    /// filter's own (EV_EOF).
    @Test func returnedEventsKeepTheirRegistrationFlags() throws {
        let sys = try quietSystem()
        let kq = try sys.kqueue()
        let (r, w) = try sys.pipe2()
        let receipt = try sys.kevent(kq, changes: [kev(r, READ, Kevent.EV_ADD | Kevent.EV_CLEAR | Kevent.EV_RECEIPT)],
                                     capacity: 4, timeout: 0)
        #expect(receipt.count == 1 && receipt[0].flags & Kevent.EV_ERROR != 0 && receipt[0].data == 0)
        _ = try sys.write(w, [1, 2, 3])
        let ready = try sys.kevent(kq, changes: [], capacity: 4, timeout: 0)
        #expect(ready.map(\.flags) == [Kevent.EV_CLEAR | Kevent.EV_RECEIPT])
        #expect(ready.first?.data == 3)
        try sys.close(w)
        let eof = try sys.kevent(kq, changes: [], capacity: 4, timeout: 0)
        #expect(eof.map(\.flags) == [Kevent.EV_CLEAR | Kevent.EV_RECEIPT | Kevent.EV_EOF])
    }

    /// fifo_vnops.c: the first reader to arrive while writers hold the FIFO calls
    /// `pipeselwakeup`, as the first writer does with readers present: a FIOASYNC owner gets
    /// SIGIO and a writer's EV_CLEAR write knote fires again.
    @Test func arrivalsOnAFIFOWakePollersKnotesAndOwners() throws {
        let sys = try quietSystem()
        try sys.mkfifo("f", 0o600)
        let r = try sys.open("f", O_RDONLY | O_NONBLOCK)
        let w = try sys.open("f", O_WRONLY | O_NONBLOCK)
        var on: Int32 = 1, owner: Int32 = getpid()
        try sys.ioctl(w, IoctlRequest.FIOASYNC, &on)
        try sys.ioctl(w, IoctlRequest.FIOSETOWN, &owner)
        let kq = try sys.kqueue()
        _ = try sys.kevent(kq, changes: [kev(w, WRITE, Kevent.EV_ADD | Kevent.EV_CLEAR)], capacity: 0, timeout: 0)
        #expect(try sys.kevent(kq, changes: [], capacity: 4, timeout: 0).count == 1)   // writable
        try sys.close(r)                                   // the last reader leaves
        _ = try sys.kevent(kq, changes: [], capacity: 4, timeout: 0)                   // EOF reported
        #expect(try sys.kevent(kq, changes: [], capacity: 4, timeout: 0).isEmpty)
        let sigio = sys.sigioCount(owner: owner)
        let r2 = try sys.open("f", O_RDONLY | O_NONBLOCK)  // a reader comes back
        #expect(sys.sigioCount(owner: owner) == sigio + 1)
        let again = try sys.kevent(kq, changes: [], capacity: 4, timeout: 0)
        #expect(again.count == 1 && again.first?.filter == WRITE)
        #expect(again.first?.data == DEFAULT_PIPE_SIZE)
        // And the mirror: with the writer gone, a writer arriving while a reader holds it.
        try sys.ioctl(r2, IoctlRequest.FIOASYNC, &on)
        try sys.ioctl(r2, IoctlRequest.FIOSETOWN, &owner)
        try sys.close(w)
        let beforeWriter = sys.sigioCount(owner: owner)
        let w2 = try sys.open("f", O_WRONLY | O_NONBLOCK)
        #expect(sys.sigioCount(owner: owner) == beforeWriter + 1)
        try sys.close(w2)
        try sys.close(r2)
    }

    /// fifo_vnops.c returns msleep's error as it is: an interruption with restart semantics
    /// (ERESTART) restarts a blocking open instead of failing it.
    @Test func anInterruptedBlockingOpenRestarts() throws {
        let sys = try quietSystem()
        try sys.mkfifo("f", 0o600)
        let node = try sys.lookup("f")
        let outcome = Locked<Result<Int32, Errno>?>(nil)
        let reader = TestThread {
            do { let fd = try sys.open("f", O_RDONLY); outcome.withLock { $0 = .success(fd) } }
            catch { outcome.withLock { $0 = .failure(error as! Errno) } }
        }
        let target = reader.engineThread!
        try #require(eventually { node.readersChan.parkedThreads == 1 }, "the open never slept")
        target.interrupt(restart: true)
        // Taken and asleep again (restarted), or failed.
        try #require(eventually { outcome.get != nil || (!target.isInterruptPending && node.readersChan.parkedThreads == 1) })
        guard outcome.get == nil else {            // (then no reader waits: an open would block)
            Issue.record("the open failed: \(String(describing: outcome.get))")
            _ = reader.join()
            return
        }
        let w = try sys.open("f", O_WRONLY)
        #expect(reader.join())
        guard case .success(let r)? = outcome.get else {
            Issue.record("no descriptor: \(String(describing: outcome.get))")
            return
        }
        _ = try sys.write(w, [7])
        #expect(try sys.read(r, count: 1) == [7])
        #expect(sys.fifoReaders("f") == 1)
    }

    /// `writev(fd, NULL, 0)` reaches `pipe_write` (copyinuio takes an empty vector): EPIPE
    /// and SIGPIPE once the reader is gone, 0 while it is there.
    @Test func anEmptyNullVectorReachesPipeWrite() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        #expect(try sys.writev(w, nil, 0) == 0)
        try sys.close(r)
        let me = EngineThread.current
        let before = me.deliveredCount(of: .SIGPIPE)
        expectErrno(.brokenPipe) { try sys.writev(w, nil, 0) }
        #expect(me.deliveredCount(of: .SIGPIPE) == before + 1)
    }

    /// `kern.ipc.pipes` is not a FreeBSD sysctl; the live-pair count is the engine's own.
    @Test func theLivePipeCountIsTheEnginesOwnSysctl() throws {
        let sys = try quietSystem()
        expectErrno(.noSuchEntry) { try sys.sysctl("kern.ipc.pipes") }
        let (r, w) = try sys.pipe2()
        #expect(try sys.sysctl("engine.pipes") == 1)
        try sys.close(r)
        try sys.close(w)
        #expect(try sys.sysctl("engine.pipes") == 0)
        #expect(PipeSystem.sysctls.contains { $0.name == "engine.pipes" })
        #expect(!PipeSystem.sysctls.contains { $0.name == "kern.ipc.pipes" })
    }

    /// sys_pipe.c: `pipe_poll`'s MAC check jumps to `locked_error` with the events gathered
    /// so far (none): a denied descriptor reports nothing, and poll and select succeed.
    @Test func aDeniedPollReportsNothingAndDoesNotFail() throws {
        let sys = try PipeSystem(policy: PipePolicy { op, _ in op == .poll ? .permissionDenied : nil }, log: { _ in })
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, [1])
        var fds = [PollFD(fd: r, events: P.POLLIN), PollFD(fd: w, events: P.POLLOUT)]
        #expect(try sys.poll(&fds, timeout: 0) == 0)
        #expect(fds.map(\.revents) == [0, 0])
        var rd: Set<Int32> = [r], wr: Set<Int32> = [w], ex: Set<Int32> = []
        #expect(try sys.select(read: &rd, write: &wr, except: &ex, timeout: 0) == 0)
        #expect(rd.isEmpty && wr.isEmpty)
    }

    /// kern_synch.c: `sleepq_abort` ends the sleep of the signalled thread alone. A buffered
    /// writer in "pipbww" interrupted beside a direct writer in "pipdwt" on the same pipe
    /// returns EINTR; the direct writer sleeps on, so it makes no extra `pipeselwakeup`
    /// (no extra SIGIO).
    @Test func anInterruptionWakesOnlyItsThread() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        let pipe = try #require(sys.pipeForTesting(r))
        var on: Int32 = 1, owner: Int32 = getpid()
        try sys.ioctl(r, IoctlRequest.FIOASYNC, &on)
        try sys.ioctl(r, IoctlRequest.FIOSETOWN, &owner)
        let big = [UInt8](repeating: 3, count: 256 * 1024)
        let direct = TestThread { _ = try? sys.write(w, big) }     // sleeps in "pipdwt"
        try #require(eventually { pipe.chan.parkedThreads == 1 && (try? sys.bytesReadable(r)) ?? 0 > 0 })
        let buffered = Locked<Errno?>(nil)
        let small = TestThread {
            do { _ = try sys.write(w, [UInt8](repeating: 4, count: 100)) } catch { buffered.withLock { $0 = error as? Errno } }
        }
        try #require(eventually { pipe.chan.parkedThreads == 2 }, "the buffered writer never slept")
        let sigio = sys.sigioCount(owner: owner)
        let wakeups = pipe.chan.wakeupCount
        small.engineThread!.interrupt()
        #expect(small.join())
        #expect(buffered.get == .interrupted)
        #expect(pipe.chan.wakeupCount == wakeups, "the interruption woke the channel's other sleepers")
        #expect(eventually { pipe.chan.parkedThreads == 1 })
        #expect(sys.sigioCount(owner: owner) == sigio)
        // The direct writer still finishes, every byte in order.
        #expect(try sys.readExactly(r, big.count) == big)
        #expect(direct.join())
    }

    /// kern_descrip.c: RLIMIT_NOFILE at run time. Lowering it affects later allocations only;
    /// `pipe2` with fewer than two descriptors free below it fails EMFILE and leaves the
    /// kernel exactly as it was (`kern_pipe` frees the pair it made); FIFO opens and `kqueue`
    /// obey it too.
    @Test func theDescriptorLimitCanChangeAtRunTime() throws {
        let sys = try quietSystem()
        let NOFILE = Int32(RLIMIT_NOFILE.rawValue)
        let start = try sys.getrlimit(NOFILE)
        #expect(Int(start.rlim_cur) == PipeConfiguration().maxDescriptors && start.rlim_max == start.rlim_cur)
        let (r, w) = try sys.pipe2()                       // fds 0 and 1
        try sys.mkfifo("f", 0o600)
        try sys.setrlimit(NOFILE, rlimit(rlim_cur: 1, rlim_max: start.rlim_max))
        #expect(try sys.write(w, [1]) == 1)                // open descriptors stay usable
        #expect(try sys.getrlimit(NOFILE).rlim_cur == 1)
        func snapshot() -> [Int] {
            [sys.openDescriptors, sys.pipekva, (try? sys.sysctl("engine.pipes")) ?? -1,
             (try? sys.sysctl("kern.ipc.pipeallocfail")) ?? -1, (try? sys.sysctl("kern.ipc.pipefragretry")) ?? -1,
             sys.arenaFreeExtents.count, sys.arenaFreeExtents.map(\.bytes).reduce(0, +)]
        }
        let before = snapshot()
        expectErrno(.tooManyOpenFiles) { try sys.pipe2() }          // none free below 1
        try sys.setrlimit(NOFILE, rlimit(rlim_cur: 3, rlim_max: start.rlim_max))
        expectErrno(.tooManyOpenFiles) { try sys.pipe2() }          // exactly one (fd 2)
        #expect(snapshot() == before, "pipe2's failure left something behind")
        try sys.setrlimit(NOFILE, rlimit(rlim_cur: 2, rlim_max: start.rlim_max))
        expectErrno(.tooManyOpenFiles) { try sys.kqueue() }
        expectErrno(.tooManyOpenFiles) { try sys.open("f", O_RDWR | O_NONBLOCK) }
        try sys.setrlimit(NOFILE, rlimit(rlim_cur: 4, rlim_max: start.rlim_max))
        let (r2, w2) = try sys.pipe2()
        #expect((r2, w2) == (2, 3))
        // Soft above hard is EINVAL; raising the hard limit needs root's credential.
        expectErrno(.invalidArgument) { try sys.setrlimit(NOFILE, rlimit(rlim_cur: 10, rlim_max: 5)) }
        sys.credential = Credential(uid: 1000, gid: 1000)
        try sys.setrlimit(NOFILE, rlimit(rlim_cur: 8, rlim_max: 8))
        expectErrno(.operationNotPermitted) { try sys.setrlimit(NOFILE, rlimit(rlim_cur: 8, rlim_max: 9)) }
        expectErrno(.invalidArgument) { try sys.getrlimit(Int32(RLIMIT_STACK.rawValue)) }
        for fd in [r, w, r2, w2] { try sys.close(fd) }
    }

    /// kern_descrip.c: `fsetown` refuses an owner that does not exist (ESRCH); 0 clears it.
    /// The engine's processes are the host's (`fsetown` in SysPipe.swift).
    @Test func aSIGIOOwnerMustExist() throws {
        let sys = try quietSystem()
        let (r, _) = try sys.pipe2()
        let pidMax = Int32(String(decoding: FileManager.default.contents(atPath: "/proc/sys/kernel/pid_max") ?? Data(),
                                  as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 4_194_304
        var v = pidMax + 1                                 // above pid_max: no such process
        expectErrno(.noSuchProcess) { try sys.ioctl(r, IoctlRequest.FIOSETOWN, &v) }
        v = -(pidMax + 1)                                  // nor such a process group
        expectErrno(.noSuchProcess) { try sys.ioctl(r, IoctlRequest.FIOSETOWN, &v) }
        v = pidMax + 1
        expectErrno(.noSuchProcess) { try sys.ioctl(r, IoctlRequest.TIOCSPGRP, &v) }
        v = 0
        try sys.ioctl(r, IoctlRequest.FIOGETOWN, &v)
        #expect(v == 0)                                    // refused owners leave none
        v = getpid()
        try sys.ioctl(r, IoctlRequest.FIOSETOWN, &v)
        v = 0
        try sys.ioctl(r, IoctlRequest.FIOSETOWN, &v)      // 0 clears
        v = 1
        try sys.ioctl(r, IoctlRequest.FIOGETOWN, &v)
        #expect(v == 0)
    }

    /// sys_pipe.c's `pipe_fill_kinfo` sends a FIFO's descriptor to `vn_fill_kinfo`: its kinfo
    /// is the node's (name, mode, file id), not the pipe's fields.
    @Test func aFIFOsKinfoIsItsNodes() throws {
        let sys = try quietSystem()
        try sys.mkfifo("named", 0o640)
        let r = try sys.open("named", O_RDONLY | O_NONBLOCK)
        let st = try sys.stat("named")
        let k = try #require(try sys.kinfo(r).vnode, "a FIFO's kinfo has no vnode fields")
        #expect(k.kf_path == "named")
        #expect(k.kf_file_mode == PipeStat.S_IFIFO | 0o640 & ~0o022)
        #expect(k.kf_file_fileid == st.st_ino && k.kf_file_fsid == st.st_dev)
        #expect(try sys.kinfo(r).pipe == nil)
        try sys.unlink("named")
        #expect(try sys.kinfo(r).vnode?.kf_path == "")     // no name once unlinked
        let (pr, _) = try sys.pipe2()
        #expect(try sys.kinfo(pr).pipe?.kf_pipe_buffer_size == DEFAULT_PIPE_SIZE)
        #expect(try sys.kinfo(pr).vnode == nil)
        #expect(try sys.bufferSize(r) > 0)                  // the FIFO's buffer is still there
    }

    /// sys_pipe.c hands a named pipe's other filters to its vnode: EVFILT_VNODE on a FIFO
    /// reports what the namespace does to the node (vfs_subr.c's vop_*_post: NOTE_OPEN,
    /// NOTE_CLOSE, NOTE_CLOSE_WRITE, NOTE_ATTRIB, NOTE_DELETE), data 0 and no EV_EOF; data
    /// through the pipe reports nothing; on an anonymous pipe the filter is EINVAL.
    @Test func vnodeEventsOnAFIFO() throws {
        typealias K = Kevent
        let sys = try quietSystem()
        try sys.mkfifo("f", 0o666)
        let watched = try sys.open("f", O_RDONLY | O_NONBLOCK)
        let kq = try sys.kqueue()
        let all: UInt32 = K.NOTE_DELETE | K.NOTE_WRITE | K.NOTE_EXTEND | K.NOTE_ATTRIB | K.NOTE_LINK
            | K.NOTE_RENAME | K.NOTE_REVOKE | K.NOTE_OPEN | K.NOTE_CLOSE | K.NOTE_CLOSE_WRITE | K.NOTE_READ
        let add = Kevent(ident: UInt(watched), filter: K.EVFILT_VNODE, flags: K.EV_ADD | K.EV_CLEAR, fflags: all)
        #expect(try sys.kevent(kq, changes: [add], capacity: 4, timeout: 0).isEmpty)
        func notes() throws -> [UInt32] {
            try sys.kevent(kq, changes: [], capacity: 4, timeout: 0).map {
                #expect($0.filter == K.EVFILT_VNODE && $0.data == 0 && $0.flags & K.EV_EOF == 0)
                return $0.fflags
            }
        }
        let w = try sys.open("f", O_WRONLY | O_NONBLOCK)
        #expect(try notes() == [K.NOTE_OPEN])
        _ = try sys.write(w, [1, 2, 3])                     // data goes through the pipe
        _ = try sys.read(watched, count: 3)
        #expect(try notes().isEmpty)
        try sys.chmod("f", 0o600)
        try sys.fchown(w, UInt32.max, UInt32.max)
        try sys.ftruncate(w, 0)
        #expect(try notes() == [K.NOTE_ATTRIB])             // EV_CLEAR: the notes since the last report
        try sys.close(w)
        #expect(try notes() == [K.NOTE_CLOSE_WRITE])
        let r2 = try sys.open("f", O_RDONLY | O_NONBLOCK)
        try sys.close(r2)
        #expect(try notes() == [K.NOTE_OPEN | K.NOTE_CLOSE])
        try sys.unlink("f")
        #expect(try notes() == [K.NOTE_DELETE])
        // Only the notes asked for are kept.
        try sys.mkfifo("g", 0o666)
        let g = try sys.open("g", O_RDONLY | O_NONBLOCK)
        _ = try sys.kevent(kq, changes: [Kevent(ident: UInt(g), filter: K.EVFILT_VNODE, flags: K.EV_ADD | K.EV_CLEAR,
                                                fflags: K.NOTE_DELETE)], capacity: 0, timeout: 0)
        try sys.chmod("g", 0o644)
        #expect(try notes().isEmpty)
        // An anonymous pipe has no vnode.
        let (pr, _) = try sys.pipe2()
        let refused = try sys.kevent(kq, changes: [Kevent(ident: UInt(pr), filter: K.EVFILT_VNODE,
                                                          flags: K.EV_ADD, fflags: all)], capacity: 4, timeout: 0)
        #expect(refused.count == 1 && refused[0].flags & K.EV_ERROR != 0 && refused[0].data == Int(EINVAL))
        try sys.close(g)
        try sys.close(watched)
    }
}
