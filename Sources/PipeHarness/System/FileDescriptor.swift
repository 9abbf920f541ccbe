import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The harness's descriptor calls on a raw descriptor (the channels keep `Int32`s: poll sets,
/// vmsplice and `F_SETPIPE_SZ` take them as they are): EINTR retried, an error turned into a
/// `HarnessError`, and no short transfer hidden (callers loop; see `ByteChannel.writeAll`).
/// `close`, `pipe` and opening go through swift-system's `FileDescriptor`; `write` and
/// `read`, the hot path, do not (below).
enum FD {
    // write and read stay raw Glibc calls: through `FileDescriptor.write`/`read(into:)` a
    // 64 B linux-pipe stream ran 34 more user-space instructions per write and 36 per read
    // (callgrind, 32,768 of each: the Result and retry closure of swift-system's non-inlinable
    // `_write`/`_read`), about 15% of the user-space work of one call. The calls below are
    // made once per descriptor, where that costs nothing.

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
    /// descriptor another thread has just been given (swift-system's `close` does not retry).
    static func close(_ fd: inout Int32) {
        guard fd >= 0 else { return }
        try? FileDescriptor(rawValue: fd).close()
        fd = -1
    }

    /// pipe2(O_CLOEXEC): (read end, write end), both close-on-exec from the start. (Setting
    /// FD_CLOEXEC afterwards leaves a window in which a child spawned by another thread
    /// inherits the ends, and a reader that leaks into a child never sees EOF or EPIPE.)
    static func pipe(what: String) throws -> (read: Int32, write: Int32) {
        do {
            let (r, w) = try FileDescriptor.pipe(options: .closeOnExec)
            return (r.rawValue, w.rawValue)
        } catch {
            throw HarnessError.system(call: "pipe2(O_CLOEXEC)", errno: error.rawValue, context: what)
        }
    }

    /// open(2) read-only with O_CLOEXEC: the descriptor, or nil.
    static func openForReading(_ path: String) -> FileDescriptor? {
        try? FileDescriptor.open(path, .readOnly, options: .closeOnExec)
    }
}
