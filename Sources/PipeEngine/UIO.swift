import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// `enum uio_rw`.
enum UIORW { case UIO_READ, UIO_WRITE }

/// `enum uio_seg`: where the iovecs point.
enum UIOSeg { case UIO_USERSPACE, UIO_SYSSPACE }

/// `struct uio`: the caller's buffers, as the kernel walks them. `uio_iov` points into the
/// kernel's own copy of the iovec array (`copyinuio`), never into the caller's.
struct UIO {
    var uio_iov: UnsafeMutablePointer<iovec>
    var uio_iovcnt: Int
    var uio_offset = 0
    var uio_resid: Int
    var uio_segflg: UIOSeg = .UIO_USERSPACE
    let uio_rw: UIORW
}

/// The iovec walk `uiomove` and `uiomove_fromphys` share: hands `move` each piece of the
/// first `n` bytes (the current iovec's base, the bytes done before it, its length) and
/// advances the uio by what `move` says it moved; a short move ends the walk. A null base
/// with a non-zero length is EFAULT.
@inline(__always)
private func uio_walk(_ n: Int, _ uio: inout UIO,
                      _ move: (_ base: UnsafeMutableRawPointer, _ done: Int, _ cnt: Int) -> Int) -> Errno? {
    var done = 0
    while done < n && uio.uio_resid > 0 {
        var cnt = uio.uio_iov.pointee.iov_len
        if cnt == 0 {
            uio.uio_iov += 1
            uio.uio_iovcnt -= 1
            continue
        }
        if cnt > n - done { cnt = n - done }
        guard let base = uio.uio_iov.pointee.iov_base else { return .badAddress }
        let moved = move(base, done, cnt)
        uio.uio_iov.pointee.iov_base = base + moved
        uio.uio_iov.pointee.iov_len -= moved
        uio.uio_resid -= moved
        uio.uio_offset += moved
        if moved < cnt { break }
        done += cnt
    }
    return nil
}

/// `uiomove(cp, n, uio)`: copies between a kernel buffer and the uio, advancing it.
/// A null base with a non-zero length is EFAULT (the one bad address a user-space copy can
/// detect without a system call; see the catalog article FidelityAndDifferences). With
/// `streaming`, copies into `cp` of at least `streamingCopyMin` bytes use non-temporal stores
/// (`CopyStrategy.streaming`).
@inline(__always)
func uiomove(_ cp: UnsafeMutableRawPointer, _ n: Int, _ uio: inout UIO, streaming: Bool = false) -> Errno? {
    let rw = uio.uio_rw
    return uio_walk(n, &uio) { base, done, cnt in
        switch rw {
        case .UIO_READ: memcpy(base, cp + done, cnt)
        case .UIO_WRITE:
            if streaming && cnt >= streamingCopyMin { pb_copy_streaming(cp + done, base, cnt) } else { memcpy(cp + done, base, cnt) }
        }
        return cnt
    }
}

/// `uiomove_fromphys(ms, offset, n, uio)`: copies from held pages (here: `pages + offset`,
/// the writer's own memory) with the fault guard armed over them, as the kernel's copy
/// routines run with a fault handler: another thread of the writer may unmap or protect
/// that memory under the copy, which the kernel's wired pages would not allow. Then the uio
/// advances by what arrived and `sourceFaulted` is set; the error is only the caller's own
/// (a null iovec base, as in `uiomove`).
@inline(__always)
func uiomove_fromphys(_ pages: UnsafeRawPointer, _ offset: Int, _ n: Int,
                      _ uio: inout UIO, sourceFaulted: inout Bool) -> Errno? {
    var faulted = false
    let error = uio_walk(n, &uio) { base, done, cnt in
        var copied = 0
        if pb_guard_copy(base, pages + offset + done, cnt, &copied) != 0 { faulted = true }
        return copied
    }
    if faulted { sourceFaulted = true }
    return error
}
