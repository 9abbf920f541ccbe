import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// Sets a kernel pipe's capacity with F_SETPIPE_SZ (the kernel rounds up to a power-of-two
/// number of pages) and returns the size it actually got.
func setKernelPipeSize(_ fd: Int32, _ size: Int) throws -> Int {
    guard size > 0, size <= Int(Int32.max) else {
        throw HarnessError.invalidArgument("kernel pipe size \(size) out of range")
    }
    let r = pb_set_pipe_size(fd, Int32(size))
    if r < 0 {
        let hint = -r == EPERM ? "; above /proc/sys/fs/pipe-max-size needs CAP_SYS_RESOURCE" : ""
        throw HarnessError.system(call: "fcntl(F_SETPIPE_SZ)", errno: -r, context: "size \(size)\(hint)")
    }
    return Int(r)
}

/// A Linux kernel pipe: write(2) into one end, read(2) from the other.
///
/// Descriptors are closed by the thread that owns that end (`closeWriteEnd` by the writer,
/// `closeReadEnd` by the reader) and whatever is left by `deinit`, after both threads are done.
public final class KernelPipeChannel: ByteChannel {
    private(set) var readFD: Int32
    private(set) var writeFD: Int32
    /// The capacity the kernel reports (F_GETPIPE_SZ) after any resize.
    public let pipeSize: Int
    /// Names the channel in error messages ("linux-pipe", "fanin linux-pipe 3").
    public let what: String

    public init(pipeSize requested: Int? = nil, what: String = "linux-pipe") throws {
        self.what = what
        (readFD, writeFD, pipeSize) = try openKernelPipe(what: what, size: requested)
    }

    deinit {
        FD.close(&readFD)
        FD.close(&writeFD)
    }

    public func write(_ base: UnsafeRawPointer, _ count: Int) throws -> Int {
        try FD.write(writeFD, base, count, what: what)
    }

    public func read(_ base: UnsafeMutableRawPointer, _ count: Int) throws -> Int {
        try FD.read(readFD, base, count, what: what)
    }

    public func closeWriteEnd() { FD.close(&writeFD) }
    public func closeReadEnd() { FD.close(&readFD) }
}

/// A kernel pipe for a channel: pipe2, then F_SETPIPE_SZ when a size is asked for (or the
/// size in force, F_GETPIPE_SZ), closing both ends if that fails. SIGPIPE is ignored so that a
/// write to a closed pipe comes back as EPIPE.
func openKernelPipe(what: String, size requested: Int?) throws -> (read: Int32, write: Int32, size: Int) {
    ignoreSIGPIPE()
    let fds = try FD.pipe(what: what)
    var readFD = fds.read, writeFD = fds.write
    do {
        if let requested {
            return (readFD, writeFD, try setKernelPipeSize(writeFD, requested))
        }
        let r = pb_get_pipe_size(writeFD)
        return (readFD, writeFD, r > 0 ? Int(r) : 0)
    } catch {
        FD.close(&readFD)
        FD.close(&writeFD)
        throw error
    }
}
