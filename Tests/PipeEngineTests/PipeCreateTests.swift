import Glibc
import Testing
@testable import PipeEngine

@Suite("pipe2, kern_pipe, pipe_create, pipe_stat")
struct PipeCreateTests {
    @Test func pipeGivesTwoDescriptorsWithTheSeedsBufferSizes() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        #expect(r == 0 && w == 1)
        // fd[0] reads pp_rpipe (PIPE_SIZE); fd[1] reads pp_wpipe (SMALL_PIPE_SIZE).
        #expect(try sys.bufferSize(r) == DEFAULT_PIPE_SIZE)
        #expect(try sys.bufferSize(w) == DEFAULT_SMALL_PIPE_SIZE)
        #expect(sys.pipekva == DEFAULT_PIPE_SIZE + DEFAULT_SMALL_PIPE_SIZE)
        #expect(try sys.sysctl("engine.pipes") == 1)
        try sys.close(r)
        try sys.close(w)
        #expect(sys.pipekva == 0)
        #expect(try sys.sysctl("engine.pipes") == 0)
    }

    @Test func bothDescriptorsAreReadableAndWritable() throws {
        let sys = try quietSystem()
        let (a, b) = try sys.pipe2()
        #expect(try sys.write(b, Array("forward".utf8)) == 7)
        #expect(try sys.write(a, Array("reverse".utf8)) == 7)
        #expect(try sys.read(a, count: 100) == Array("forward".utf8))
        #expect(try sys.read(b, count: 100) == Array("reverse".utf8))
        #expect(try sys.fcntl(a, F_GETFL) & O_ACCMODE == O_RDWR)
    }

    @Test func reverseDirectionGrowsFromSmallSize() throws {
        let sys = try quietSystem()
        let (a, b) = try sys.pipe2(O_NONBLOCK)
        let data = pattern(0..<40_000, seed: 9)
        // 40000 bytes into a 4 KiB buffer: 4K -> 8K -> ... -> 64K (BIG_PIPE_SIZE) first.
        #expect(try sys.write(a, data) == 40_000)
        #expect(try sys.bufferSize(b) == DEFAULT_BIG_PIPE_SIZE)
        #expect(try sys.readExactly(b, 40_000) == data)
    }

    @Test func pipe2RejectsFlagsOtherThanCloexecAndNonblock() throws {
        let sys = try quietSystem()
        expectErrno(.invalidArgument) { try sys.pipe2(O_APPEND) }
        expectErrno(.invalidArgument) { try sys.pipe2(0o40000 /* O_DIRECT */) }
        #expect(sys.pipekva == 0 && sys.openDescriptors == 0)
        let (r, w) = try sys.pipe2(O_CLOEXEC | O_NONBLOCK)
        #expect(try sys.fcntl(r, F_GETFD) == FD_CLOEXEC)
        #expect(try sys.fcntl(w, F_GETFL) & O_NONBLOCK != 0)
        expectErrno(.wouldBlock) { try sys.read(r, count: 1) }
    }

    @Test func inodesAreUniquePerEndAndDeviceIsShared() throws {
        let sys = try quietSystem()
        var inodes = Set<UInt64>()
        var devices = Set<UInt64>()
        for _ in 0..<20 {
            let (r, w) = try sys.pipe2()
            for fd in [r, w] {
                let st = try sys.fstat(fd)
                inodes.insert(st.st_ino)
                devices.insert(st.st_dev)
            }
            try sys.close(r)
            try sys.close(w)
        }
        #expect(inodes.count == 40)
        #expect(inodes.min() == 1 && inodes.max() == 40)  // from 1, never reused
        #expect(devices.count == 1)
    }

    @Test func fstatReportsQueuedBytesAndFifoMode() throws {
        let sys = try quietSystem()
        let (r, w) = try sys.pipe2()
        _ = try sys.write(w, pattern(0..<5000))
        let st = try sys.fstat(r)
        #expect(st.st_mode == PipeStat.S_IFIFO)          // no permission bits
        #expect(st.st_size == 5000)
        #expect(st.st_blksize == PAGE_SIZE)
        #expect(st.st_blocks == 2)
        #expect(st.st_uid == getuid() && st.st_gid == getgid())
        #expect(st.st_nlink == 0)
        #expect(st.st_ctim.tv_sec > 0)
        #expect(try sys.fstat(w).st_size == 0)           // nothing queued fd[0] -> fd[1]
    }

    @Test func tooManyDescriptorsFreesEverythingItTook() throws {
        var config = PipeConfiguration()
        config.maxDescriptors = 3
        let sys = try quietSystem(config)
        let (r, w) = try sys.pipe2()
        // One descriptor left: the second falloc fails; the pair must be torn down.
        expectErrno(.tooManyOpenFiles) { try sys.pipe2() }
        #expect(sys.openDescriptors == 2)
        #expect(sys.pipekva == DEFAULT_PIPE_SIZE + DEFAULT_SMALL_PIPE_SIZE)
        #expect(try sys.sysctl("engine.pipes") == 1)
        try sys.close(r)
        try sys.close(w)
        #expect(sys.pipekva == 0 && sys.arenaAllocatedBytes == 0)
        #expect(try sys.sysctl("engine.pipes") == 0)
    }

    @Test func lowestFreeDescriptorIsReused() throws {
        let sys = try quietSystem()
        let (a, b) = try sys.pipe2()
        let (c, d) = try sys.pipe2()
        #expect([a, b, c, d] == [0, 1, 2, 3])
        try sys.close(b)
        let (e, f) = try sys.pipe2()
        #expect(e == 1 && f == 4)
    }
}
