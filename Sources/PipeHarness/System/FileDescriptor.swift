import CPipeSys
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

    /// pipe2(O_CLOEXEC): (read end, write end), both close-on-exec from the start. (Setting
    /// FD_CLOEXEC afterwards leaves a window in which a child spawned by another thread
    /// inherits the ends, and a reader that leaks into a child never sees EOF or EPIPE.)
    static func pipe(what: String) throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let e = fds.withUnsafeMutableBufferPointer { pb_pipe_cloexec($0.baseAddress!) }
        if e != 0 { throw HarnessError.system(call: "pipe2(O_CLOEXEC)", errno: e, context: what) }
        return (fds[0], fds[1])
    }

    /// open(2) with O_CLOEXEC: the descriptor, or -1 with `errno` set.
    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        let r = pb_open_cloexec(path, flags, Int32(mode))
        if r < 0 { errno = -r; return -1 }
        return r
    }
}
