#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over read(2)/write(2)/close(2) on a raw descriptor: retry EINTR, turn -1 into
/// a `HarnessError`, and never hide a short transfer (callers loop; see `ByteChannel.writeAll`).
enum FD {
    /// One write(2): bytes accepted (> 0 for count > 0). EPIPE becomes `.peerClosed`.
    static func write(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int, what: String) throws -> Int {
        while true {
            let n = Glibc.write(fd, base, count)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EPIPE || e == ECONNRESET { throw HarnessError.peerClosed("\(what): reader closed") }
            throw HarnessError.system(call: "write", errno: e, context: what)
        }
    }

    /// One read(2): bytes read, 0 at end of file.
    static func read(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ count: Int, what: String) throws -> Int {
        while true {
            let n = Glibc.read(fd, base, count)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            throw HarnessError.system(call: "read", errno: e, context: what)
        }
    }

    /// close(2) once; a descriptor set to -1 is already closed. EINTR is not retried: on Linux
    /// the descriptor is released even when close reports EINTR, and retrying could close a
    /// descriptor another thread has just been given.
    static func close(_ fd: inout Int32) {
        guard fd >= 0 else { return }
        _ = Glibc.close(fd)
        fd = -1
    }

    /// pipe(2), both ends close-on-exec: (read end, write end). (pipe2 is hidden from Swift's
    /// Glibc module, which is imported without _GNU_SOURCE; nothing here forks in between.)
    static func pipe(what: String) throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let r = fds.withUnsafeMutableBufferPointer { Glibc.pipe($0.baseAddress!) }
        if r != 0 { throw HarnessError.system(call: "pipe", errno: errno, context: what) }
        for fd in fds where fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 {
            let e = errno
            var a = fds[0], b = fds[1]
            close(&a)
            close(&b)
            throw HarnessError.system(call: "fcntl(F_SETFD, FD_CLOEXEC)", errno: e, context: what)
        }
        return (fds[0], fds[1])
    }
}
