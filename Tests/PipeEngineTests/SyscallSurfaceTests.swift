import Glibc
import Testing
@testable import PipeEngine

@Suite("system-call surface: bad input, ioctl, fcntl, sysctl")
struct SyscallSurfaceTests {
    @Test func badDescriptorsAreEBADF() throws {
        let sys = try quietSystem()
        expectErrno(.badFileDescriptor) { try sys.read(0, count: 1) }
        expectErrno(.badFileDescriptor) { try sys.write(-1, [1]) }
        expectErrno(.badFileDescriptor) { try sys.close(7) }
        expectErrno(.badFileDescriptor) { try sys.fstat(1 << 20) }
        let (r, w) = try sys.pipe2()
        try sys.close(r)
        expectErrno(.badFileDescriptor) { try sys.read(r, count: 1) }
        expectErrno(.badFileDescriptor) { try sys.close(r) }
        var n: Int32 = 0
        expectErrno(.badFileDescriptor) { try sys.ioctl(r, IoctlRequest.FIONREAD, &n) }
        try sys.close(w)
    }

    @Test func badBuffersAndCountsAreRefused() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        expectErrno(.badAddress) { try sys.write(w, nil, 10) }
        expectErrno(.invalidArgument) { try sys.write(w, nil, -1) }
        expectErrno(.invalidArgument) { try sys.read(r, nil, -5) }
        #expect(try sys.read(r, nil, 0) == 0)              // 0-byte read never enters the pipe
        expectErrno(.invalidArgument) { try sys.readv(r, nil, -1) }
        expectErrno(.invalidArgument) { try sys.writev(w, nil, PipeSystem.IOV_MAX + 1) }
        expectErrno(.badAddress) { try sys.writev(w, nil, 2) }
        #expect(try sys.bytesReadable(r) == 0)             // nothing was accepted
    }

    @Test func pipesAreNotSeekableTruncatableOrChmodable() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        expectErrno(.illegalSeek) { try sys.lseek(r, 0, SEEK_CUR) }
        expectErrno(.illegalSeek) { try sys.pread(r, nil, 0, 0) }
        expectErrno(.illegalSeek) { try sys.pwrite(w, nil, 0, 0) }
        expectErrno(.invalidArgument) { try sys.ftruncate(w, 0) }
        expectErrno(.invalidArgument) { try sys.fchmod(w, 0o644) }
        expectErrno(.invalidArgument) { try sys.fchown(w, 0, 0) }
    }

    @Test func ioctlRequests() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, pattern(0..<123))
        var v: Int32 = 0
        try sys.ioctl(r, IoctlRequest.FIONREAD, &v)
        #expect(v == 123)
        v = 1
        try sys.ioctl(r, IoctlRequest.FIONBIO, &v)
        #expect(try sys.fcntl(r, F_GETFL) & O_NONBLOCK != 0)
        _ = try sys.read(r, count: 200)
        expectErrno(.wouldBlock) { try sys.read(r, count: 1) }
        v = getpid()                                       // owners must exist: this process
        try sys.ioctl(r, IoctlRequest.FIOSETOWN, &v)
        v = 0
        try sys.ioctl(r, IoctlRequest.FIOGETOWN, &v)
        #expect(v == getpid())
        v = getpgrp()                                      // and its process group
        try sys.ioctl(r, IoctlRequest.TIOCSPGRP, &v)         // deprecated spelling: -pgid
        v = 0
        try sys.ioctl(r, IoctlRequest.FIOGETOWN, &v)
        #expect(v == -getpgrp())
        try sys.ioctl(r, IoctlRequest.TIOCGPGRP, &v)
        #expect(v == getpgrp())
        expectErrno(.notTerminal) { try sys.ioctl(r, 0x5401 /* TCGETS */, &v) }
    }

    @Test func fcntlCommands() throws {
        let sys = try quietSystem()
        let (r, _) = try sys.pipe2()
        #expect(try sys.fcntl(r, F_GETFD) == 0)
        try sys.fcntl(r, F_SETFD, FD_CLOEXEC)
        #expect(try sys.fcntl(r, F_GETFD) == FD_CLOEXEC)
        try sys.fcntl(r, F_SETFL, O_NONBLOCK)
        expectErrno(.wouldBlock) { try sys.read(r, count: 1) }
        try sys.fcntl(r, F_SETFL, 0)
        #expect(try sys.fcntl(r, F_GETFL) == O_RDWR)
        expectErrno(.invalidArgument) { try sys.fcntl(r, F_DUPFD, 0) }
    }

    @Test func sysctlNamesAccessAndValidation() throws {
        let sys = try quietSystem(smallKVAConfiguration(1 << 20))
        #expect(try sys.sysctl("kern.ipc.maxpipekva") == 1 << 20)
        #expect(try sys.sysctl("kern.ipc.pipe_mindirect") == PIPE_MINDIRECT)
        expectErrno(.invalidArgument) { try sys.sysctl("kern.ipc.pipe_mindirect", set: PIPE_BUF) }
        try sys.sysctl("kern.ipc.pipe_mindirect", set: PIPE_BUF + 1)
        #expect(try sys.sysctl("kern.ipc.pipe_mindirect") == PIPE_BUF + 1)
        expectErrno(.operationNotPermitted) { try sys.sysctl("kern.ipc.maxpipekva", set: 1 << 30) }
        expectErrno(.operationNotPermitted) { try sys.sysctl("kern.ipc.pipekva", set: 0) }
        expectErrno(.noSuchEntry) { try sys.sysctl("kern.ipc.nonesuch") }
        expectErrno(.noSuchEntry) { try sys.sysctl("kern.ipc.nonesuch", set: 1) }
        for d in PipeSystem.sysctls {
            #expect(throws: Never.self) { _ = try sys.sysctl(d.name) }
        }
    }

    @Test func invalidConfigurationsSayWhatToChange() {
        func rejects(_ edit: (inout PipeConfiguration) -> Void, mentioning word: String) {
            var c = PipeConfiguration()
            edit(&c)
            do {
                _ = try PipeSystem(c)
                Issue.record("accepted an invalid configuration (\(word))")
            } catch {
                #expect(error.errno == .invalidArgument)
                #expect(error.message.contains(word))
            }
        }
        rejects({ $0.pipeSize = 10_000 }, mentioning: "PIPE_SIZE")
        rejects({ $0.smallPipeSize = 32768 }, mentioning: "SMALL_PIPE_SIZE")
        rejects({ $0.bigPipeSize = 8192 }, mentioning: "BIG_PIPE_SIZE")
        rejects({ $0.pipeMindirect = 512 }, mentioning: "PIPE_BUF")
        rejects({ $0.maxpipekva = 8192 }, mentioning: "maxpipekva")
        rejects({ $0.maxpipekva = 100_000 }, mentioning: "maxpipekva")
    }

    @Test func errnoDescriptionsAreReadable() {
        #expect(Errno.brokenPipe.description == "EPIPE: Broken pipe")
        #expect(Errno.wouldBlock.name == "EAGAIN")
        #expect(Errno.restart.name == "ERESTART")
    }

    @Test func defaultMaxpipekvaIsPhysicalMemoryOver64() {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        let expected = max(512 * 1024, (pages * size / 64 + 4095) & ~4095)
        #expect(PipeConfiguration().maxpipekva == expected)
    }
}
