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

/// `uiomove(cp, n, uio)`: copies between a kernel buffer and the uio, advancing it.
/// A null base with a non-zero length is EFAULT (the one bad address a user-space copy can
/// detect without a system call; see the catalog article FidelityAndDifferences). With
/// `streaming`, copies into `cp` of at least `streamingCopyMin` bytes use non-temporal stores
/// (`CopyStrategy.streaming`).
@inline(__always)
func uiomove(_ cp: UnsafeMutableRawPointer, _ n: Int, _ uio: inout UIO, streaming: Bool = false) -> Errno? {
    var cp = cp, n = n
    while n > 0 && uio.uio_resid > 0 {
        var cnt = uio.uio_iov.pointee.iov_len
        if cnt == 0 {
            uio.uio_iov += 1
            uio.uio_iovcnt -= 1
            continue
        }
        if cnt > n { cnt = n }
        guard let base = uio.uio_iov.pointee.iov_base else { return .badAddress }
        switch uio.uio_rw {
        case .UIO_READ: memcpy(base, cp, cnt)
        case .UIO_WRITE:
            if streaming && cnt >= streamingCopyMin { pb_copy_streaming(cp, base, cnt) } else { memcpy(cp, base, cnt) }
        }
        uio.uio_iov.pointee.iov_base = base + cnt
        uio.uio_iov.pointee.iov_len -= cnt
        uio.uio_resid -= cnt
        uio.uio_offset += cnt
        cp += cnt
        n -= cnt
    }
    return nil
}

/// `uiomove_fromphys(ms, offset, n, uio)`: copies from held pages (here: `pages + offset`).
@inline(__always)
func uiomove_fromphys(_ pages: UnsafeRawPointer, _ offset: Int, _ n: Int,
                      _ uio: inout UIO) -> Errno? {
    uiomove(UnsafeMutableRawPointer(mutating: pages + offset), n, &uio)
}
