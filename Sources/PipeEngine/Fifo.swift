import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

// Named pipes: fifo_vnops.c's fifo_open / fifo_close over sys_pipe.c's pipe_named_ctor,
// in a namespace of the PipeSystem's own (a flat map from path to node, no directories).
//
// Locking: `namespaceLock` guards the path map; a node's `vnodeLock` (the vnode lock) guards
// `fifoPipe` (v_fifoinfo) and is held across open and close, except while an open sleeps;
// the reader and writer counts are guarded by the FIFO pipe's mutex, as in FreeBSD, so that
// opens sleep on them with `msleep(&fi_readers, PIPE_MTX(fpipe))`.

/// A FIFO's node: its attributes and, while opened, its pipe (`struct fifoinfo`).
final class FifoNode: @unchecked Sendable {
    let vnodeLock = PipeMutex()
    var mode: UInt32                 // permission bits
    var uid: UInt32
    var gid: UInt32
    let ino: UInt64
    var nlink: UInt32 = 1
    var atime = timespec(), mtime = timespec(), ctime = timespec()
    /// The pair behind `fi_pipe` (the node keeps it alive while the FIFO is open).
    var fifoPair: PipePair?
    /// `fi_pipe`: the named pipe (pp_rpipe of the pair, TYPE_NAMED, its own peer).
    var fifoPipe: Pipe? { fifoPair?.pp_rpipe }
    var fi_readers = 0
    var fi_writers = 0
    /// Reader and writer open generations: a blocked open succeeds once the other side's
    /// generation moved, even if that partner has already gone again.
    var fi_rgen = 0
    var fi_wgen = 0
    /// Sleep channels `&fi_readers` and `&fi_writers`.
    let readersChan = WaitChannel()
    let writersChan = WaitChannel()
    /// EVFILT_VNODE knotes on the node (`vp->v_pollinfo`), guarded by `vnodeLock`.
    var knotes: [Knote] = []

    /// `VFS_KNOTE_LOCKED(vp, hint)`: the node changed. Called with `vnodeLock` held.
    func knote(_ hint: UInt32) {
        for kn in knotes { kn.vnodeNote(hint) }
    }

    init(mode: UInt32, cred: Credential, ino: UInt64) {
        self.mode = mode & 0o7777
        uid = cred.uid
        gid = cred.gid
        self.ino = ino
        pipe_timestamp(&ctime)
        atime = ctime
        mtime = ctime
    }
}

/// Access wanted by an open (`VREAD` / `VWRITE`).
struct AccessMode: OptionSet {
    let rawValue: UInt32
    static let VREAD = AccessMode(rawValue: 0o4)
    static let VWRITE = AccessMode(rawValue: 0o2)
}

/// `vaccess`: owner, then group, then other bits; root may read and write anything.
func vaccess(_ node: FifoNode, _ cred: Credential, _ wanted: AccessMode) -> Errno? {
    if cred.uid == 0 { return nil }
    let bits: UInt32
    if cred.uid == node.uid {
        bits = (node.mode >> 6) & 0o7
    } else if cred.gid == node.gid {
        bits = (node.mode >> 3) & 0o7
    } else {
        bits = node.mode & 0o7
    }
    return wanted.rawValue & ~bits == 0 ? nil : .permissionDenied
}

extension PipeSystem {
    // MARK: - the namespace

    /// `mkfifo(path, mode)`: a FIFO node in this instance's namespace (mode & ~umask).
    public func mkfifo(_ path: String, _ mode: UInt32) throws(Errno) {
        guard !path.isEmpty else { throw .noSuchEntry }
        let node = FifoNode(mode: mode & ~umask, cred: credential, ino: kernel.alloc_unr64())
        namespace.lock.lock()
        defer { namespace.lock.unlock() }
        if namespace.nodes[path] != nil { throw .exists }
        namespace.nodes[path] = node
    }

    /// `unlink(path)`: the name goes; descriptors already open keep the FIFO working.
    public func unlink(_ path: String) throws(Errno) {
        namespace.lock.lock()
        defer { namespace.lock.unlock() }
        guard let node = namespace.nodes.removeValue(forKey: path) else { throw .noSuchEntry }
        node.vnodeLock.lock()
        node.nlink = 0
        node.knote(Kevent.NOTE_DELETE)                  // vop_remove_post
        node.vnodeLock.unlock()
    }

    func lookup(_ path: String) throws(Errno) -> FifoNode {
        namespace.lock.lock()
        defer { namespace.lock.unlock() }
        guard let node = namespace.nodes[path] else { throw .noSuchEntry }
        return node
    }

    /// `stat(path)`.
    public func stat(_ path: String) throws(Errno) -> PipeStat {
        fifoStat(try lookup(path))
    }

    /// `chmod(path, mode)`: the owner or root only (EPERM).
    public func chmod(_ path: String, _ mode: UInt32) throws(Errno) {
        try fifoChmod(try lookup(path), mode, as: credential)
    }

    /// `chown(path, uid, gid)`: root only, or the owner giving the file to a group it is in.
    public func chown(_ path: String, _ uid: UInt32, _ gid: UInt32) throws(Errno) {
        try fifoChown(try lookup(path), uid, gid, as: credential)
    }

    /// `truncate(path, length)`: needs write access; a FIFO ignores the size (as UFS does).
    public func truncate(_ path: String, _ length: Int) throws(Errno) {
        let node = try lookup(path)
        guard length >= 0 else { throw .invalidArgument }
        node.vnodeLock.lock()
        defer { node.vnodeLock.unlock() }
        if let denied = vaccess(node, credential, .VWRITE) { throw denied }
        node.knote(Kevent.NOTE_ATTRIB)                  // vop_setattr_post: the size ignored
    }

    /// `vn_fill_kinfo` for a FIFO node: its name (none once unlinked), mode, file id, device.
    func vn_fill_kinfo(_ node: FifoNode) -> KinfoVnode {
        namespace.lock.lock()
        let path = namespace.nodes.first { $0.value === node }?.key ?? ""
        namespace.lock.unlock()
        let st = fifoStat(node)
        return KinfoVnode(kf_path: path, kf_file_mode: st.st_mode, kf_file_fileid: st.st_ino,
                          kf_file_fsid: st.st_dev, kf_file_size: 0)
    }

    func fifoStat(_ node: FifoNode) -> PipeStat {
        node.vnodeLock.lock()
        defer { node.vnodeLock.unlock() }
        var st = PipeStat()
        st.st_mode = PipeStat.S_IFIFO | node.mode
        st.st_uid = node.uid
        st.st_gid = node.gid
        st.st_nlink = node.nlink
        st.st_ino = node.ino
        st.st_dev = kernel.pipedev_ino &+ 1      // the namespace's "file system"
        st.st_blksize = PAGE_SIZE
        st.st_atim = node.atime
        st.st_mtim = node.mtime
        st.st_ctim = node.ctime
        return st
    }

    func fifoChmod(_ node: FifoNode, _ mode: UInt32, as cred: Credential) throws(Errno) {
        node.vnodeLock.lock()
        defer { node.vnodeLock.unlock() }
        guard cred.uid == 0 || cred.uid == node.uid else { throw .operationNotPermitted }
        node.mode = mode & 0o7777
        pipe_timestamp(&node.ctime)
        node.knote(Kevent.NOTE_ATTRIB)                  // vop_setattr_post
    }

    func fifoChown(_ node: FifoNode, _ uid: UInt32, _ gid: UInt32, as cred: Credential) throws(Errno) {
        node.vnodeLock.lock()
        defer { node.vnodeLock.unlock() }
        let newUID = uid == UInt32.max ? node.uid : uid     // -1 leaves it unchanged
        let newGID = gid == UInt32.max ? node.gid : gid
        if cred.uid != 0 {
            guard cred.uid == node.uid, newUID == node.uid, newGID == cred.gid || newGID == node.gid
            else { throw .operationNotPermitted }
        }
        node.uid = newUID
        node.gid = newGID
        pipe_timestamp(&node.ctime)
        node.knote(Kevent.NOTE_ATTRIB)                  // vop_setattr_post
    }

    // MARK: - open, fifo_open, fifo_close

    /// `open(path, flags)` of a FIFO: O_RDONLY, O_WRONLY or O_RDWR, with O_NONBLOCK and
    /// O_CLOEXEC. The mode bits are checked against `credential` (EACCES). A blocking open
    /// waits for the other side; a non-blocking write-only open without a reader is ENXIO.
    /// O_CREAT makes the FIFO's path only if it exists (this namespace has no regular files:
    /// creating one is EOPNOTSUPP); O_CREAT|O_EXCL on an existing path is EEXIST.
    public func open(_ path: String, _ flags: Int32) throws(Errno) -> Int32 {
        let known = O_ACCMODE | O_NONBLOCK | O_CLOEXEC | O_CREAT | O_EXCL
        guard flags & ~known == 0 else { throw .invalidArgument }
        if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
            if (try? lookup(path)) != nil { throw .exists }
        }
        let node: FifoNode
        do {
            node = try lookup(path)
        } catch {
            throw flags & O_CREAT != 0 ? Errno(rawValue: EOPNOTSUPP) : error
        }
        var fflags: FileFlags
        var wanted: AccessMode
        switch flags & O_ACCMODE {
        case O_RDONLY: fflags = .FREAD; wanted = .VREAD
        case O_WRONLY: fflags = .FWRITE; wanted = .VWRITE
        case O_RDWR: fflags = [.FREAD, .FWRITE]; wanted = [.VREAD, .VWRITE]
        default: throw .invalidArgument
        }
        let cred = credential
        node.vnodeLock.lock()
        if let denied = vaccess(node, cred, wanted) {
            node.vnodeLock.unlock()
            throw denied
        }
        node.vnodeLock.unlock()
        let nonblock = flags & O_NONBLOCK != 0
        if nonblock { fflags.insert(.FNONBLOCK) }
        var file: File
        while true {
            do {
                file = try fifo_open(node, fflags, nonblock: nonblock, cred: cred)
                break
            } catch .restart {
                continue          // an interruption with restart semantics: open again
            }
        }
        node.vnodeLock.lock()
        node.knote(Kevent.NOTE_OPEN)                    // vop_open_post
        node.vnodeLock.unlock()
        do {
            return try falloc(file, cloexec: flags & O_CLOEXEC != 0)
        } catch {
            fifo_close(node, file)
            throw error
        }
    }

    /// `fifo_open` (+ `pipe_named_ctor` on first open): counts, generations, waits.
    func fifo_open(_ node: FifoNode, _ fflags: FileFlags, nonblock: Bool,
                   cred: Credential) throws(Errno) -> File {
        node.vnodeLock.lock()
        if node.fifoPipe == nil {
            // pipe_named_ctor
            switch kernel.pipe_paircreate() {
            case .success(let pp):
                pp.pp_rpipe.pipe_type |= Pipe.PIPE_TYPE_NAMED
                pp.pp_rpipe.pipe_wgen = 0
                node.fifoPair = pp
                node.fi_readers = 0
                node.fi_writers = 0
            case .failure(let error):
                node.vnodeLock.unlock()
                throw error
            }
        }
        let fpipe = node.fifoPipe!
        let file = File(pair: fpipe.pipe_pair, forward: true, flags: fflags, cred: cred,
                        zone: table.fileWords, vnode: node)
        fpipe.PIPE_LOCK()
        if fflags.contains(.FREAD) {
            node.fi_readers += 1
            node.fi_rgen += 1
            if node.fi_readers == 1 {
                fpipe.pipe_state.remove(.EOF)
                if fpipe.pipe_state.contains(.WANTW) { kernel.wakeup(fpipe) }
                if node.fi_writers > 0 { kernel.pipeselwakeup(fpipe) }   // writers' pollers, knotes, SIGIO
            }
            node.writersChan.wakeup()             // writers blocked in open: a reader came
            file.f_pipegen = fpipe.pipe_wgen - node.fi_writers
        }
        if fflags.contains(.FWRITE) {
            if nonblock && node.fi_readers == 0 {
                fpipe.PIPE_UNLOCK()
                fifo_cleanup(node)
                node.vnodeLock.unlock()
                throw .noSuchDevice
            }
            node.fi_writers += 1
            node.fi_wgen += 1
            if node.fi_writers == 1 {
                fpipe.pipe_state.remove(.EOF)
                if fpipe.pipe_state.contains(.WANTR) { kernel.wakeup(fpipe) }
                if node.fi_readers > 0 { kernel.pipeselwakeup(fpipe) }   // readers' pollers, knotes, SIGIO
            }
            node.readersChan.wakeup()             // readers blocked in open: a writer came
        }
        node.vnodeLock.unlock()   // VOP_UNLOCK before sleeping
        if !nonblock {
            // Sleep until the other side's open generation moves. An interruption fails the
            // open only if no partner came meanwhile; then this open is undone (fifo_close).
            if fflags.contains(.FREAD) && node.fi_writers == 0 {
                let gen = node.fi_wgen
                var error: Errno?
                while error == nil && node.fi_wgen == gen {
                    error = kernel.msleep(node.readersChan, fpipe, catch: true, .fifoor)
                }
                if let error, node.fi_wgen == gen {
                    fpipe.PIPE_UNLOCK()
                    fifo_close(node, file)
                    throw error       // ERESTART: the open starts again (PipeSystem.open)
                }
            }
            if fflags.contains(.FWRITE) && node.fi_readers == 0 {
                let gen = node.fi_rgen
                var error: Errno?
                while error == nil && node.fi_rgen == gen {
                    error = kernel.msleep(node.writersChan, fpipe, catch: true, .fifoow)
                }
                if let error, node.fi_rgen == gen {
                    fpipe.PIPE_UNLOCK()
                    fifo_close(node, file)
                    throw error       // ERESTART: the open starts again (PipeSystem.open)
                }
            }
        }
        fpipe.PIPE_UNLOCK()
        return file
    }

    /// `fifo_close`: the last reader sets EOF; the last writer sets EOF and bumps the writer
    /// generation; the pipe is destroyed when both counts reach 0.
    func fifo_close(_ node: FifoNode, _ file: File) {
        node.vnodeLock.lock()
        defer { node.vnodeLock.unlock() }
        guard let cpipe = node.fifoPipe else { return }
        let fflag = file.f_flag
        cpipe.PIPE_LOCK()
        if fflag.contains(.FREAD) {
            node.fi_readers -= 1
            if node.fi_readers == 0 {
                cpipe.pipe_state.insert(.EOF)
                if cpipe.pipe_state.contains(.WANTW) { kernel.wakeup(cpipe) }
                kernel.pipeselwakeup(cpipe)
            }
        }
        if fflag.contains(.FWRITE) {
            node.fi_writers -= 1
            if node.fi_writers == 0 {
                cpipe.pipe_state.insert(.EOF)
                if cpipe.pipe_state.contains(.WANTR) { kernel.wakeup(cpipe) }
                cpipe.pipe_wgen += 1
                kernel.pipeselwakeup(cpipe)
            }
        }
        cpipe.PIPE_UNLOCK()
        fifo_cleanup(node)
    }

    /// `fifo_cleanup`: with the vnode lock held, destroy the pipe once nobody has it open.
    private func fifo_cleanup(_ node: FifoNode) {
        guard let pair = node.fifoPair, node.fi_readers == 0, node.fi_writers == 0 else { return }
        let fpipe = pair.pp_rpipe
        node.fifoPair = nil
        kernel.pipe_dtor(fpipe)
    }
}

/// The FIFO namespace of one PipeSystem.
final class FifoNamespace: @unchecked Sendable {
    let lock = PipeMutex()
    var nodes: [String: FifoNode] = [:]
}
