import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// One simulated kernel: its tunables and counters (`sysctl`), its KVA arena, its inode
/// counter and its own descriptor table, behind a surface shaped like FreeBSD's system calls,
/// so that a C program written against pipes ports line by line:
///
/// ```swift
/// let sys = try PipeSystem()
/// let (r, w) = try sys.pipe2()
/// _ = try sys.write(w, "hello", 5)
/// var buf = [UInt8](repeating: 0, count: 16)
/// let n = try buf.withUnsafeMutableBytes { try sys.read(r, $0.baseAddress, $0.count) }
/// try sys.close(w); try sys.close(r)
/// ```
///
/// Errors are thrown as `Errno` (the host's errno values). The generic file layer's rules
/// around `fo_read`/`fo_write` live here: a 0-byte read returns 0 without entering the pipe;
/// a short count replaces EINTR/ERESTART/EAGAIN once bytes moved; ERESTART restarts the call
/// when nothing moved; EPIPE delivers SIGPIPE to the calling thread (recorded, never fatal).
public final class PipeSystem: @unchecked Sendable, SignalSink {
    let kernel: PipeKernel
    let table: DescriptorTable

    /// The credential new descriptors are opened with.
    public var credential: Credential {
        get { table.withLock { table.credential } }
        set { table.withLock { table.credential = newValue } }
    }

    /// Called on the receiving thread for SIGPIPE, and on the thread that caused it for SIGIO.
    /// Must not block. Set it before the pipes are in use.
    public let signalHandler: (@Sendable (Signal, SignalTarget) -> Void)?

    /// The file-creation mask `mkfifo` applies.
    public var umask: UInt32 {
        get { table.withLock { table.umask } }
        set { table.withLock { table.umask = newValue & 0o777 } }
    }

    let namespace = FifoNamespace()
    let kqueues = KqueueRegistry()

    private let sigioLock = PipeMutex()
    private var sigioCounts: [Int32: Int] = [:]

    /// Creates a simulated kernel. `log` receives the kernel's console messages (the
    /// rate-limited "kern.ipc.maxpipekva exceeded"); stderr by default.
    public init(_ configuration: PipeConfiguration = PipeConfiguration(),
                policy: PipePolicy? = nil,
                signalHandler: (@Sendable (Signal, SignalTarget) -> Void)? = nil,
                log: @escaping @Sendable (String) -> Void = { message in
                    pb_write_stderr("pipe engine: \(message)")
                }) throws(PipeEngineError) {
        kernel = try PipeKernel(config: configuration, log: log, policy: policy)
        table = DescriptorTable(limit: configuration.maxDescriptors)
        self.signalHandler = signalHandler
        kernel.signalSink = self
        table.system = self
    }

    deinit {
        // Close what the user left open, so the arena is empty before it is unmapped.
        for file in table.removeAll() { fdrop(file) }
    }

    /// The configuration this instance was made with.
    public var configuration: PipeConfiguration { kernel.config }

    // MARK: - pipe, pipe2 (kern_pipe)

    /// `pipe2(fildes, flags)`: two descriptors, both readable and writable (FreeBSD pipes are
    /// bidirectional). `flags` may hold only `O_CLOEXEC` and `O_NONBLOCK`, else EINVAL.
    /// fd[1] -> fd[0] data lives in a `PIPE_SIZE` buffer, fd[0] -> fd[1] in `SMALL_PIPE_SIZE`.
    public func pipe2(_ flags: Int32 = 0) throws(Errno) -> (Int32, Int32) {
        // sys_pipe2
        if flags & ~(O_CLOEXEC | O_NONBLOCK) != 0 { throw .invalidArgument }
        return try kern_pipe(flags)
    }

    /// `pipe(fildes)`.
    public func pipe() throws(Errno) -> (Int32, Int32) { try kern_pipe(0) }

    /// `kern_pipe`: create the pair, then a descriptor for each end; on failure, close what
    /// was made.
    private func kern_pipe(_ flags: Int32) throws(Errno) -> (Int32, Int32) {
        let pp: PipePair
        switch kernel.pipe_paircreate() {
        case .success(let pair): pp = pair
        case .failure(let error): throw error
        }
        var fflags: FileFlags = [.FREAD, .FWRITE]
        if flags & O_NONBLOCK != 0 { fflags.insert(.FNONBLOCK) }
        let cloexec = flags & O_CLOEXEC != 0
        let cred = credential
        let rf = File(pair: pp, forward: true, flags: fflags, cred: cred, zone: table.fileWords)
        let wf = File(pair: pp, forward: false, flags: fflags, cred: cred, zone: table.fileWords)
        guard let fd0 = table.falloc(rf, cloexec: cloexec) else {
            kernel.pipeclose(pp.pp_rpipe)
            kernel.pipeclose(pp.pp_wpipe)
            throw .tooManyOpenFiles
        }
        guard let fd1 = table.falloc(wf, cloexec: cloexec) else {
            // fdclose + fdrop(rf): rpipe is closed through its file; then close wpipe.
            if let file = table.remove(fd0, ifStill: rf) { fdrop(file) }
            kernel.pipeclose(pp.pp_wpipe)
            throw .tooManyOpenFiles
        }
        return (fd0, fd1)
    }

    // MARK: - read, readv, write, writev

    /// `read(fd, buf, nbyte)`: bytes read; 0 at end of file.
    public func read(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ nbyte: Int) throws(Errno) -> Int {
        guard nbyte >= 0 else { throw .invalidArgument }
        var iov = iovec(iov_base: buf, iov_len: nbyte)
        return try withUnsafeMutablePointer(to: &iov) { (p) throws(Errno) -> Int in
            try dofileread(fd, p, 1, nbyte)
        }
    }

    /// `write(fd, buf, nbyte)`: bytes written (a short count once some moved). As in FreeBSD,
    /// EFAULT is thrown even when part of the write had already moved (a direct write whose
    /// second chunk cannot be held): "do not pretend that I/O succeeded for user error".
    public func write(_ fd: Int32, _ buf: UnsafeRawPointer?, _ nbyte: Int) throws(Errno) -> Int {
        guard nbyte >= 0 else { throw .invalidArgument }
        var iov = iovec(iov_base: UnsafeMutableRawPointer(mutating: buf), iov_len: nbyte)
        return try withUnsafeMutablePointer(to: &iov) { (p) throws(Errno) -> Int in
            try dofilewrite(fd, p, 1, nbyte)
        }
    }

    /// `readv(fd, iov, iovcnt)`.
    public func readv(_ fd: Int32, _ iov: UnsafePointer<iovec>?, _ iovcnt: Int32) throws(Errno) -> Int {
        try checkDescriptor(fd)
        return try vectored(iov, iovcnt) { (p, n, total) throws(Errno) -> Int in
            try dofileread(fd, p, n, total)
        }
    }

    /// `writev(fd, iov, iovcnt)`.
    public func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>?, _ iovcnt: Int32) throws(Errno) -> Int {
        try checkDescriptor(fd)
        return try vectored(iov, iovcnt) { (p, n, total) throws(Errno) -> Int in
            try dofilewrite(fd, p, n, total)
        }
    }

    /// EBADF for a descriptor that is not open (before the iovecs are even looked at).
    private func checkDescriptor(_ fd: Int32) throws(Errno) {
        guard let fo = table.fget(fd) else { throw .badFileDescriptor }
        fdrop(fo)
    }

    /// `IOV_MAX`.
    public static let IOV_MAX: Int32 = 1024

    /// `copyinuio`: validate the iovec array and copy it, so the kernel never edits the
    /// caller's array.
    private func vectored(_ iov: UnsafePointer<iovec>?, _ iovcnt: Int32,
                          _ body: (UnsafeMutablePointer<iovec>, Int, Int) throws(Errno) -> Int)
        throws(Errno) -> Int
    {
        guard iovcnt >= 0, iovcnt <= PipeSystem.IOV_MAX else { throw .invalidArgument }
        guard let iov else {
            // An empty vector is a call with nothing to move, which still reaches the file's
            // routine (pipe_write: EPIPE without a reader), as copyinuio makes it.
            guard iovcnt == 0 else { throw .badAddress }
            var none = iovec(iov_base: nil, iov_len: 0)
            return try body(&none, 0, 0)
        }
        let count = Int(iovcnt)
        var total = 0
        for i in 0..<count {
            let (sum, overflow) = total.addingReportingOverflow(iov[i].iov_len)
            guard !overflow, iov[i].iov_len >= 0, sum <= Int.max else { throw .invalidArgument }
            total = sum
        }
        // On the stack for the usual handful of iovecs: no heap allocation per call.
        return try withUnsafeTemporaryAllocation(of: iovec.self, capacity: max(count, 1)) {
            (copy) throws(Errno) -> Int in
            let base = copy.baseAddress!
            base.initialize(from: iov, count: count)
            return try body(base, count, total)
        }
    }

    /// `fget`, then `body` with the file and the calling thread, then `fdrop`: EBADF for a
    /// closed descriptor, `onKqueue` for a kqueue. Nothing is retained: the file's own
    /// reference keeps it alive, the thread's slot keeps its record (a checked downcast would
    /// retain the file, so the type is read from `f_type`).
    @inline(__always)
    private func withPipeFile(_ fd: Int32, onKqueue: Errno,
                              _ body: (File, EngineThread) -> Result<Int, Errno>) throws(Errno) -> Int {
        guard let ref = table.fgetRef(fd) else { throw .badFileDescriptor }
        defer { fdrop(ref) }
        return try ref._withUnsafeGuaranteedRef { (fo) -> Result<Int, Errno> in
            guard fo.f_type != .DTYPE_KQUEUE else { return .failure(onKqueue) }
            return EngineThread.currentRef._withUnsafeGuaranteedRef { thread in
                body(unsafeDowncast(fo, to: File.self), thread)
            }
        }.get()
    }

    /// `dofileread`: fget, fo_read, the generic layer's short-count rules, fdrop.
    private func dofileread(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ iovcnt: Int,
                            _ cnt: Int) throws(Errno) -> Int {
        try withPipeFile(fd, onKqueue: .noSuchDevice) { fp, thread in   // kqueue_read: ENXIO
            guard fp.f_flag.contains(.FREAD) else { return .failure(.badFileDescriptor) }
            // A 0-byte read returns 0 without entering the pipe.
            if cnt == 0 { return .success(0) }
            return fo_rdwr(fp, thread, .UIO_READ, iov, iovcnt, cnt)
        }
    }

    /// `dofilewrite`: as `dofileread`, plus SIGPIPE on EPIPE.
    private func dofilewrite(_ fd: Int32, _ iov: UnsafeMutablePointer<iovec>, _ iovcnt: Int,
                             _ cnt: Int) throws(Errno) -> Int {
        try withPipeFile(fd, onKqueue: .noSuchDevice) { fp, thread in   // kqueue_write: ENXIO
            guard fp.f_flag.contains(.FWRITE) else { return .failure(.badFileDescriptor) }
            return fo_rdwr(fp, thread, .UIO_WRITE, iov, iovcnt, cnt)
        }
    }

    /// `fo_read` / `fo_write` (`pipe_read` / `pipe_write`) and the generic layer's rules around
    /// them, on a held file: a short count replaces EINTR/ERESTART/EAGAIN once bytes moved,
    /// ERESTART with nothing moved starts the call again, EPIPE from a write delivers SIGPIPE.
    @inline(__always)
    private func fo_rdwr(_ fp: File, _ thread: EngineThread, _ rw: UIORW,
                         _ iov: UnsafeMutablePointer<iovec>, _ iovcnt: Int,
                         _ cnt: Int) -> Result<Int, Errno> {
        while true {
            var uio = UIO(uio_iov: iov, uio_iovcnt: iovcnt, uio_resid: cnt, uio_rw: rw)
            let error = rw == .UIO_READ ? kernel.pipe_read(fp, &uio) : kernel.pipe_write(fp, &uio)
            let moved = cnt - uio.uio_resid
            if let error {
                if moved != 0 && (error == .restart || error == .interrupted || error == .wouldBlock) {
                    thread.discardInterruption()
                    return .success(moved)
                }
                if error == .restart { continue }  // SA_RESTART: the call starts again
                if error == .brokenPipe && rw == .UIO_WRITE { deliver(.SIGPIPE, to: thread) }
                thread.discardInterruption()
                return .failure(error)
            }
            if thread.isInterruptPending { thread.discardInterruption() }
            return .success(moved)
        }
    }

    /// `fdrop`: the last reference runs `fo_close`, then gives back the Swift reference the
    /// table took in `falloc` (see `DescriptorTable.fgetRef`).
    @inline(__always) func fdrop(_ fp: FileObject) { fdrop(Unmanaged.passUnretained(fp)) }

    /// `fdrop` for a reference from `fgetRef`.
    @inline(__always) func fdrop(_ ref: Unmanaged<FileObject>) {
        if ref._withUnsafeGuaranteedRef({ $0.drop() }) {
            fo_close(ref.takeUnretainedValue())
            ref.release()
        }
    }

    /// `fo_close`: `pipe_close` (or `fifo_close`) for a pipe, `kqueue_close` for a kqueue.
    func fo_close(_ fp: FileObject) {
        if let file = fp as? File {
            if let node = file.vnode {
                fifo_close(node, file)
                node.vnodeLock.lock()                   // vop_close_post
                node.knote(file.f_flag.contains(.FWRITE) ? Kevent.NOTE_CLOSE_WRITE : Kevent.NOTE_CLOSE)
                node.vnodeLock.unlock()
            } else {
                kernel.pipe_close(file)
            }
        } else if let kq = fp as? KqueueFile {
            kqueue_close(kq)
        }
    }

    /// `fget` for a system call on a pipe: EBADF for a closed descriptor, `onKqueue` for a
    /// kqueue (whose fileops refuse pipe operations). The caller must `fdrop` the result.
    @inline(__always)
    func fgetPipe(_ fd: Int32, onKqueue: Errno = .badFileDescriptor) throws(Errno) -> File {
        guard let fo = table.fget(fd) else { throw .badFileDescriptor }
        if let file = fo as? File { return file }
        fdrop(fo)
        throw onKqueue
    }

    /// `falloc`: a descriptor for `file`, or EMFILE.
    func falloc(_ file: FileObject, cloexec: Bool) throws(Errno) -> Int32 {
        guard let fd = table.falloc(file, cloexec: cloexec) else { throw .tooManyOpenFiles }
        return fd
    }

    // MARK: - close, fcntl, ioctl, fstat, lseek, ...

    /// `close(fd)`. The pipe end is shut down when the last reference goes: a system call
    /// still running on the descriptor in another thread keeps it open until it returns.
    public func close(_ fd: Int32) throws(Errno) {
        guard let fp = table.remove(fd) else { throw .badFileDescriptor }
        knote_fdclose(fd, fp)
        fdrop(fp)
    }

    /// `fcntl(fd, cmd, arg)`: F_GETFD, F_SETFD (FD_CLOEXEC), F_GETFL, F_SETFL (O_NONBLOCK,
    /// O_ASYNC); other commands are EINVAL.
    @discardableResult
    public func fcntl(_ fd: Int32, _ cmd: Int32, _ arg: Int32 = 0) throws(Errno) -> Int32 {
        guard let fp = table.fget(fd) else { throw .badFileDescriptor }
        defer { fdrop(fp) }
        switch cmd {
        case F_GETFD:
            return table.cloexec(fd) ? FD_CLOEXEC : 0
        case F_SETFD:
            table.setCloexec(fd, arg & FD_CLOEXEC != 0)
            return 0
        case F_GETFL:
            let f = fp.f_flag
            var flags = f.contains([.FREAD, .FWRITE]) ? O_RDWR : f.contains(.FWRITE) ? O_WRONLY : O_RDONLY
            if f.contains(.FNONBLOCK) { flags |= O_NONBLOCK }
            if f.contains(.FASYNC) { flags |= O_ASYNC }
            return flags
        case F_SETFL:
            // As FreeBSD's kern_fcntl: FNONBLOCK via FIONBIO, then FASYNC via FIOASYNC.
            var nonblock: Int32 = arg & O_NONBLOCK != 0 ? 1 : 0
            fp.setFlag(.FNONBLOCK, nonblock != 0)
            if let error = fo_ioctl(fp, IoctlRequest.FIONBIO, &nonblock) {
                fp.setFlag(.FNONBLOCK, false)
                throw error
            }
            var async: Int32 = arg & O_ASYNC != 0 ? 1 : 0
            fp.setFlag(.FASYNC, async != 0)
            if let error = fo_ioctl(fp, IoctlRequest.FIOASYNC, &async) {
                // As kern_fcntl: FASYNC off, FNONBLOCK off, and FIONBIO(0) told to the file.
                fp.setFlag(.FASYNC, false)
                fp.setFlag(.FNONBLOCK, false)
                var off: Int32 = 0
                _ = fo_ioctl(fp, IoctlRequest.FIONBIO, &off)
                throw error
            }
            return 0
        default:
            throw .invalidArgument
        }
    }

    /// `fo_ioctl`: `pipe_ioctl`, or a kqueue's (which knows only FIONBIO and FIOASYNC).
    private func fo_ioctl(_ fp: FileObject, _ request: UInt, _ arg: inout Int32) -> Errno? {
        if let file = fp as? File { return kernel.pipe_ioctl(file, request, &arg) }
        switch request {
        case IoctlRequest.FIONBIO, IoctlRequest.FIOASYNC: return nil
        default: return .notTerminal
        }
    }

    /// `ioctl(fd, request, &arg)`: FIONREAD, FIONBIO, FIOASYNC, FIOSETOWN, FIOGETOWN,
    /// TIOCSPGRP, TIOCGPGRP; anything else is ENOTTY.
    public func ioctl(_ fd: Int32, _ request: UInt, _ arg: inout Int32) throws(Errno) {
        guard let fp = table.fget(fd) else { throw .badFileDescriptor }
        defer { fdrop(fp) }
        // FIONBIO and FIOASYNC change the descriptor's flags before pipe_ioctl runs.
        if request == IoctlRequest.FIONBIO { fp.setFlag(.FNONBLOCK, arg != 0) }
        if request == IoctlRequest.FIOASYNC { fp.setFlag(.FASYNC, arg != 0) }
        if let error = fo_ioctl(fp, request, &arg) { throw error }
    }

    /// `ioctl(fd, FIONREAD)` as a value: bytes readable now.
    public func bytesReadable(_ fd: Int32) throws(Errno) -> Int {
        var n: Int32 = 0
        try ioctl(fd, IoctlRequest.FIONREAD, &n)
        return Int(n)
    }

    /// `fstat(fd)`: `pipe_stat`; for a FIFO, its node's attributes (`vnops.fo_stat`).
    public func fstat(_ fd: Int32) throws(Errno) -> PipeStat {
        guard let fo = table.fget(fd) else { throw .badFileDescriptor }
        defer { fdrop(fo) }
        guard let fp = fo as? File else {
            var st = PipeStat()                 // kqueue_stat: S_IFIFO, all else zero
            st.st_mode = PipeStat.S_IFIFO
            return st
        }
        if let node = fp.vnode {
            if let policy = kernel.policy, let denied = policy.check(.stat, fp.f_cred) { throw denied }
            return fifoStat(node)
        }
        switch kernel.pipe_stat(fp) {
        case .success(let st): return st
        case .failure(let error): throw error
        }
    }

    /// `lseek`: pipes are not seekable (ESPIPE).
    public func lseek(_ fd: Int32, _ offset: Int, _ whence: Int32) throws(Errno) -> Int {
        guard let fp = table.fget(fd) else { throw .badFileDescriptor }
        fdrop(fp)
        throw .illegalSeek
    }

    /// `pread`: ESPIPE.
    public func pread(_ fd: Int32, _ buf: UnsafeMutableRawPointer?, _ nbyte: Int, _ offset: Int) throws(Errno) -> Int {
        _ = try lseek(fd, offset, SEEK_SET)
        return 0
    }

    /// `pwrite`: ESPIPE.
    public func pwrite(_ fd: Int32, _ buf: UnsafeRawPointer?, _ nbyte: Int, _ offset: Int) throws(Errno) -> Int {
        _ = try lseek(fd, offset, SEEK_SET)
        return 0
    }

    /// `ftruncate` -> `pipe_truncate`: EINVAL on an anonymous pipe (`invfo_truncate`); on a
    /// FIFO the node ignores a size change, as UFS does for fifos, after kern_ftruncate's
    /// checks (EINVAL without FWRITE or for a negative length).
    public func ftruncate(_ fd: Int32, _ length: Int) throws(Errno) {
        let fp = try fgetPipe(fd, onKqueue: .invalidArgument)
        defer { fdrop(fp) }
        guard let node = fp.vnode, length >= 0, fp.f_flag.contains(.FWRITE) else { throw .invalidArgument }
        node.vnodeLock.lock()
        node.knote(Kevent.NOTE_ATTRIB)                  // vop_setattr_post: the size ignored
        node.vnodeLock.unlock()
    }

    /// `fchmod` -> `pipe_chmod`: EINVAL on an anonymous pipe (`invfo_chmod`); the node's
    /// mode for a FIFO (`vn_chmod`).
    public func fchmod(_ fd: Int32, _ mode: UInt32) throws(Errno) {
        let fp = try fgetPipe(fd, onKqueue: .invalidArgument)
        defer { fdrop(fp) }
        guard let node = fp.vnode else { throw .invalidArgument }
        try fifoChmod(node, mode, as: fp.f_cred)
    }

    /// `fchown` -> `pipe_chown`: EINVAL on an anonymous pipe (`invfo_chown`); the node's
    /// owner for a FIFO (`vn_chown`).
    public func fchown(_ fd: Int32, _ uid: UInt32, _ gid: UInt32) throws(Errno) {
        let fp = try fgetPipe(fd, onKqueue: .invalidArgument)
        defer { fdrop(fp) }
        guard let node = fp.vnode else { throw .invalidArgument }
        try fifoChown(node, uid, gid, as: fp.f_cred)
    }

    /// `pipe_fill_kinfo`: what `procstat -f` shows of a pipe descriptor; a FIFO's goes to
    /// `vn_fill_kinfo` (the node's fields), as `pipe_fill_kinfo` sends `DTYPE_FIFO` there.
    public func kinfo(_ fd: Int32) throws(Errno) -> KinfoFile {
        let fp = try fgetPipe(fd, onKqueue: .invalidArgument)
        defer { fdrop(fp) }
        if let node = fp.vnode { return .vnode(vn_fill_kinfo(node)) }
        return .pipe(kernel.pipe_fill_kinfo(fp))
    }

    /// The number of descriptors open in this instance.
    public var openDescriptors: Int { table.count }

    /// `getrlimit(resource)`: only `RLIMIT_NOFILE` (the descriptor table's limit, at first
    /// `PipeConfiguration.maxDescriptors` for both); EINVAL for any other resource.
    public func getrlimit(_ resource: Int32) throws(Errno) -> rlimit {
        guard resource == Int32(RLIMIT_NOFILE.rawValue) else { throw .invalidArgument }
        let (soft, hard) = table.rlimit
        return rlimit(rlim_cur: rlim_t(soft), rlim_max: rlim_t(hard))
    }

    /// `setrlimit(resource, limit)` for `RLIMIT_NOFILE`: later `pipe2`, `open` and `kqueue`
    /// calls get descriptors below the new soft limit (EMFILE when none is free); descriptors
    /// already open stay. Values above `maxDescriptors` (`maxfilesperproc`) are clamped to it,
    /// as FreeBSD clamps them; EINVAL when soft > hard or for another resource, EPERM when a
    /// caller without root's credential raises the hard limit.
    public func setrlimit(_ resource: Int32, _ limit: rlimit) throws(Errno) {
        guard resource == Int32(RLIMIT_NOFILE.rawValue) else { throw .invalidArgument }
        func clamp(_ v: rlim_t) -> Int { v >= rlim_t(Int.max) ? Int.max : Int(v) }
        if let error = table.setRlimit(soft: clamp(limit.rlim_cur), hard: clamp(limit.rlim_max),
                                       privileged: credential.uid == 0) {
            throw error
        }
    }

    // MARK: - signals

    /// How many SIGIOs the engine sent to a FIOSETOWN owner.
    public func sigioCount(owner: Int32) -> Int {
        sigioLock.lock()
        defer { sigioLock.unlock() }
        return sigioCounts[owner] ?? 0
    }

    func deliver(_ signal: Signal, to thread: EngineThread) {
        thread.record(signal)
        signalHandler?(signal, .thread(thread.tid))
    }

    /// `pgsigio(&sigio, SIGIO, 0)`, with the pipe mutex held: record it, call the handler.
    func pgsigio(owner: Int32, _ signal: Signal) {
        sigioLock.lock()
        sigioCounts[owner, default: 0] += 1
        sigioLock.unlock()
        signalHandler?(signal, .owner(owner))
    }

    // MARK: - introspection for tests and the harness

    /// Free ranges of the KVA arena (offset, bytes), lowest first.
    public var arenaFreeExtents: [(offset: Int, bytes: Int)] { kernel.arena.freeExtents }
    /// Bytes of the arena in use: equals `kern.ipc.pipekva`.
    public var arenaAllocatedBytes: Int { kernel.arena.allocatedBytes }
    /// Pages currently held by direct writes.
    public var heldPages: Int { kernel.heldPages.load() }
    /// Console messages suppressed by the once-a-second rate limit.
    public var suppressedMessages: Int { kernel.messagesSuppressed }

    /// The size of the buffer behind a descriptor's read side (`pipe_buffer.size`), for an
    /// anonymous pipe or a FIFO.
    public func bufferSize(_ fd: Int32) throws(Errno) -> Int {
        let fp = try fgetPipe(fd, onKqueue: .invalidArgument)
        defer { fdrop(fp) }
        return kernel.pipe_fill_kinfo(fp).kf_pipe_buffer_size
    }

    /// The pipe a descriptor reads (tests look at its state).
    func pipeForTesting(_ fd: Int32) -> Pipe? {
        guard let fp = try? fgetPipe(fd) else { return nil }
        defer { fdrop(fp) }
        return fp.f_data
    }

    /// Readers counted on a FIFO right now (tests wait for a blocked open with it).
    func fifoReaders(_ path: String) -> Int {
        guard let node = try? lookup(path) else { return 0 }
        node.vnodeLock.lock()
        defer { node.vnodeLock.unlock() }
        guard let pipe = node.fifoPipe else { return 0 }
        pipe.PIPE_LOCK()
        defer { pipe.PIPE_UNLOCK() }
        return node.fi_readers
    }

    /// The KVA arena's address range (for placement checks: which node its pages are on).
    public var arenaRange: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: kernel.arena.base, count: kernel.arena.size)
    }

}

/// Who received a signal.
public enum SignalTarget: Sendable, Hashable {
    /// An engine thread (by kernel thread id): SIGPIPE after EPIPE.
    case thread(Int32)
    /// A FIOSETOWN owner (pid, or -pgid): SIGIO.
    case owner(Int32)
}
