import Foundation
import Glibc
import Testing
@testable import PipeEngine

@Suite("named pipes: mkfifo, fifo_open, fifo_close, access control")
struct FifoTests {
    @Test func mkfifoStatAndNamespaceErrors() throws {
        let sys = try quietSystem()
        try sys.mkfifo("/tmp/f", 0o666)
        let st = try sys.stat("/tmp/f")
        #expect(st.st_mode == PipeStat.S_IFIFO | 0o644)     // umask 022
        #expect(st.st_nlink == 1)
        expectErrno(.exists) { try sys.mkfifo("/tmp/f", 0o600) }
        expectErrno(.noSuchEntry) { try sys.stat("/tmp/nope") }
        expectErrno(.noSuchEntry) { try sys.open("/tmp/nope", O_RDONLY) }
        expectErrno(.exists) { try sys.open("/tmp/f", O_RDONLY | O_CREAT | O_EXCL) }
        expectErrno(Errno(rawValue: EOPNOTSUPP)) { try sys.open("/tmp/new", O_WRONLY | O_CREAT) }
        try sys.chmod("/tmp/f", 0o600)
        #expect(try sys.stat("/tmp/f").st_mode == PipeStat.S_IFIFO | 0o600)
        try sys.truncate("/tmp/f", 0)
        try sys.unlink("/tmp/f")
        expectErrno(.noSuchEntry) { try sys.stat("/tmp/f") }
    }

    @Test func nonBlockingOpens() throws {
        let sys = try quietSystem()
        try sys.mkfifo("f", 0o600)
        expectErrno(.noSuchDevice) { try sys.open("f", O_WRONLY | O_NONBLOCK) }
        let r = try sys.open("f", O_RDONLY | O_NONBLOCK)
        let w = try sys.open("f", O_WRONLY | O_NONBLOCK)
        _ = try sys.write(w, Array("through the fifo".utf8))
        #expect(try sys.read(r, count: 100) == Array("through the fifo".utf8))
        // Access through the descriptor: no read on a write-only one, and the reverse.
        expectErrno(.badFileDescriptor) { try sys.read(w, count: 1) }
        expectErrno(.badFileDescriptor) { try sys.write(r, [1]) }
        #expect(try sys.fstat(r).st_mode == PipeStat.S_IFIFO | 0o600)
        try sys.close(w)
        #expect(try sys.read(r, count: 100).isEmpty)          // EOF after the writer left
        // With the reader gone too, a write through a new O_RDWR descriptor finds a reader
        // (itself): it succeeds.
        let both = try sys.open("f", O_RDWR | O_NONBLOCK)
        #expect(try sys.write(both, [5]) == 1)
        #expect(try sys.read(both, count: 1) == [5])
    }

    @Test func blockingOpensWaitForTheOtherSide() throws {
        let sys = try quietSystem()
        try sys.mkfifo("f", 0o600)
        let readerFD = Locked<Int32?>(nil)
        let reader = TestThread {
            let fd = try! sys.open("f", O_RDONLY)
            readerFD.withLock { $0 = fd }
        }
        usleep(30_000)
        #expect(readerFD.get == nil)                    // still waiting for a writer
        let w = try sys.open("f", O_WRONLY)             // a reader is waiting: no sleep
        #expect(reader.join())
        let r = readerFD.get!
        _ = try sys.write(w, [1, 2])
        #expect(try sys.read(r, count: 5) == [1, 2])
        // O_RDWR never waits.
        let both = try sys.open("f", O_RDWR)
        try sys.close(both)
        // A waiting open can be interrupted.
        try sys.mkfifo("g", 0o600)
        let me = EngineThread.current
        let interrupter = TestThread { usleep(20_000); me.interrupt() }
        expectErrno(.interrupted) { try sys.open("g", O_WRONLY) }
        #expect(interrupter.join())
    }

    @Test func eofIsIgnoredUntilAWriterLeaves() throws {
        let sys = try quietSystem()
        try sys.mkfifo("f", 0o600)
        let r = try sys.open("f", O_RDONLY | O_NONBLOCK)
        var fds = [PollFD(fd: r, events: PollEvents.POLLIN)]
        #expect(try sys.poll(&fds, timeout: 0) == 0)            // no writer yet: no hang-up
        let kq = try sys.kqueue()
        let change = Kevent(ident: UInt(r), filter: Kevent.EVFILT_READ, flags: Kevent.EV_ADD)
        #expect(try sys.kevent(kq, changes: [change], capacity: 4, timeout: 0).isEmpty)
        let w = try sys.open("f", O_WRONLY | O_NONBLOCK)
        try sys.close(w)                                         // a writer came and went
        #expect(try sys.poll(&fds, timeout: 0) == 1)
        #expect(fds[0].revents == PollEvents.POLLIN | PollEvents.POLLHUP)
        let ev = try sys.kevent(kq, changes: [], capacity: 4, timeout: 0)
        #expect(ev.count == 1 && ev[0].flags & Kevent.EV_EOF != 0)
        // A new reader has not seen a writer leave: EOF ignored again.
        let r2 = try sys.open("f", O_RDONLY | O_NONBLOCK)
        var fds2 = [PollFD(fd: r2, events: PollEvents.POLLIN)]
        #expect(try sys.poll(&fds2, timeout: 0) == 0)
        // A write filter on a read-only descriptor is accepted and never fires.
        let wr = Kevent(ident: UInt(r2), filter: Kevent.EVFILT_WRITE, flags: Kevent.EV_ADD | Kevent.EV_RECEIPT)
        #expect(try sys.kevent(kq, changes: [wr], capacity: 4, timeout: 0).first?.data == 0)
        let later = try sys.kevent(kq, changes: [], capacity: 4, timeout: 0)
        #expect(!later.contains { $0.ident == UInt(r2) })
    }

    @Test func thePipeIsDestroyedWhenTheLastEndCloses() throws {
        let sys = try quietSystem()
        try sys.mkfifo("f", 0o600)
        let r = try sys.open("f", O_RDONLY | O_NONBLOCK)
        let w = try sys.open("f", O_WRONLY | O_NONBLOCK)
        #expect(sys.pipekva > 0)
        _ = try sys.write(w, [1, 2, 3])
        try sys.close(w)
        #expect(sys.pipekva > 0)
        try sys.close(r)
        #expect(sys.pipekva == 0)
        #expect(try sys.sysctl("engine.pipes") == 0)
        // Reopened: a fresh pipe, the old bytes are gone.
        let r2 = try sys.open("f", O_RDONLY | O_NONBLOCK)
        expectErrno(.wouldBlock) { _ = try sys.open("f", O_WRONLY | O_NONBLOCK); return try sys.read(r2, count: 10) }
    }

    @Test func modeBitsAndOwnershipAreEnforced() throws {
        let sys = try quietSystem()
        sys.credential = Credential(uid: 1000, gid: 100)
        try sys.mkfifo("mine", 0o640)
        #expect(try sys.stat("mine").st_uid == 1000)
        sys.credential = Credential(uid: 1001, gid: 100)          // same group: read only
        let r = try sys.open("mine", O_RDONLY | O_NONBLOCK)
        expectErrno(.permissionDenied) { try sys.open("mine", O_WRONLY | O_NONBLOCK) }
        expectErrno(.operationNotPermitted) { try sys.chmod("mine", 0o666) }
        expectErrno(.operationNotPermitted) { try sys.fchmod(r, 0o666) }
        sys.credential = Credential(uid: 2000, gid: 200)          // other: nothing
        expectErrno(.permissionDenied) { try sys.open("mine", O_RDONLY | O_NONBLOCK) }
        expectErrno(.operationNotPermitted) { try sys.chown("mine", 2000, 200) }
        sys.credential = Credential(uid: 0, gid: 0)               // root: anything
        let w = try sys.open("mine", O_WRONLY | O_NONBLOCK)
        try sys.chown("mine", 2000, 200)
        #expect(try sys.fstat(w).st_uid == 2000)
        #expect(try sys.fstat(r).st_uid == 2000)
        try sys.close(w); try sys.close(r)
    }

    @Test func policyHookDeniesWithoutChangingState() throws {
        let denyReads = Locked(false)
        let sys = try PipeSystem(policy: PipePolicy { op, cred in
            if case .read = op, denyReads.get { return .permissionDenied }
            if case .ioctl(let cmd) = op, cmd == IoctlRequest.FIOASYNC { return .operationNotPermitted }
            return nil
        }, log: { _ in })
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, [1, 2, 3])
        denyReads.withLock { $0 = true }
        expectErrno(.permissionDenied) { try sys.read(r, count: 3) }
        #expect(try sys.bytesReadable(r) == 3)
        var on: Int32 = 1
        expectErrno(.operationNotPermitted) { try sys.ioctl(r, IoctlRequest.FIOASYNC, &on) }
        denyReads.withLock { $0 = false }
        #expect(try sys.read(r, count: 3) == [1, 2, 3])
    }

    /// A reader blocked in open succeeds when a writer came, even if it wrote and left before
    /// the reader woke: the data is there, then EOF (open generations, as FreeBSD keeps them).
    @Test func blockedReaderSeesAWriterThatCameAndWent() throws {
        var config = PipeConfiguration()
        config.wait = .park
        for _ in 0..<20 {
            let sys = try quietSystem(config)
            try sys.mkfifo("f", 0o600)
            let got = Locked<[UInt8]?>(nil)
            let reader = TestThread {
                let fd = try! sys.open("f", O_RDONLY)
                let first = try! sys.read(fd, count: 10)
                let eof = try! sys.read(fd, count: 10)
                got.withLock { $0 = eof.isEmpty ? first : nil }
            }
            while sys.fifoReaders("f") == 0 { usleep(100) }
            let w = try sys.open("f", O_WRONLY)
            _ = try sys.write(w, [1, 2, 3])
            try sys.close(w)
            #expect(reader.join(timeout: 10))
            #expect(got.get == [1, 2, 3])
        }
    }

    /// Int32.min has no negation: the owner it names (as TIOCSPGRP negates it, as C wraps)
    /// is no process group, so fsetown refuses it (ESRCH), without trapping, and the owner
    /// stays as it was.
    @Test func processGroupOwnerExtremesDoNotTrap() throws {
        let sys = try quietSystem()
        let (r, _) = try sys.pipe2()
        var v = Int32.min
        expectErrno(.noSuchProcess) { try sys.ioctl(r, IoctlRequest.TIOCSPGRP, &v) }
        try sys.ioctl(r, IoctlRequest.TIOCGPGRP, &v)
        #expect(v == 0)
        v = Int32.min
        expectErrno(.noSuchProcess) { try sys.ioctl(r, IoctlRequest.FIOSETOWN, &v) }
        try sys.ioctl(r, IoctlRequest.FIOGETOWN, &v)
        #expect(v == 0)
    }
}
