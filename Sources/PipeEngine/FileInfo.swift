#if canImport(Glibc)
import Glibc
#endif

// What `fstat` and `kinfo` return (`struct stat`, `struct kinfo_file`): the values pipe_stat,
// pipe_fill_kinfo and vn_fill_kinfo fill.

/// What `fstat` returns for a pipe (`struct stat`, with FreeBSD's field names).
public struct PipeStat: Sendable, Hashable {
    public static let S_IFIFO: UInt32 = 0o010000
    public var st_dev: UInt64 = 0
    public var st_ino: UInt64 = 0
    public var st_mode: UInt32 = 0
    public var st_nlink: UInt32 = 0
    public var st_uid: UInt32 = 0
    public var st_gid: UInt32 = 0
    public var st_rdev: UInt64 = 0
    public var st_size: Int = 0
    public var st_blksize: Int = 0
    public var st_blocks: Int = 0
    public var st_atim = timespec()
    public var st_mtim = timespec()
    public var st_ctim = timespec()
    public var st_flags: UInt32 = 0
    public var st_gen: UInt32 = 0

    public static func == (a: PipeStat, b: PipeStat) -> Bool {
        a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_mode == b.st_mode
            && a.st_size == b.st_size && a.st_uid == b.st_uid && a.st_gid == b.st_gid
            && a.st_blocks == b.st_blocks && a.st_blksize == b.st_blksize
    }
    public func hash(into h: inout Hasher) { h.combine(st_dev); h.combine(st_ino) }
}

/// What `pipe_fill_kinfo` reports (`struct kinfo_file`'s `kf_pipe`).
/// What `procstat -f` shows of a descriptor (`struct kinfo_file`): `KF_TYPE_PIPE` with the
/// pipe's fields, or, for a FIFO, `KF_TYPE_VNODE` with the node's (`vn_fill_kinfo`, which
/// `pipe_fill_kinfo` hands a FIFO's descriptor to).
public enum KinfoFile: Sendable, Hashable {
    case pipe(KinfoPipe)
    case vnode(KinfoVnode)

    /// The pipe's fields; nil for a FIFO's descriptor.
    public var pipe: KinfoPipe? { if case .pipe(let k) = self { return k } else { return nil } }
    /// The node's fields; nil for an anonymous pipe's descriptor.
    public var vnode: KinfoVnode? { if case .vnode(let k) = self { return k } else { return nil } }
}

/// `vn_fill_kinfo`'s fields for a FIFO (`kf_vnode_type` is `KF_VTYPE_VFIFO`).
public struct KinfoVnode: Sendable, Hashable {
    /// The name in the namespace; empty once unlinked (`vn_fullpath` finds none).
    public var kf_path: String
    /// `S_IFIFO` and the permission bits.
    public var kf_file_mode: UInt32
    /// The node's file id (its `st_ino`).
    public var kf_file_fileid: UInt64
    /// The namespace's device (`st_dev`).
    public var kf_file_fsid: UInt64
    /// A FIFO has no size.
    public var kf_file_size: Int
}

public struct KinfoPipe: Sendable, Hashable {
    public var kf_pipe_addr: UInt
    public var kf_pipe_peer: UInt
    public var kf_pipe_buffer_cnt: Int
    public var kf_pipe_buffer_in: Int
    public var kf_pipe_buffer_out: Int
    public var kf_pipe_buffer_size: Int
}
