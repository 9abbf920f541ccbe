import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

/// `pipe_map`: the submap the pipe buffers live in, exactly `maxpipekva` bytes.
///
/// User space: one `mmap` reservation (`PROT_NONE`, `MAP_NORESERVE`: address space, no memory)
/// and a first-fit page allocator over it, as `vm_map_find(..., VMFS_ANY_SPACE, ...)` allocates
/// from the lowest free address. Allocation makes the pages read-write (`mprotect`); freeing
/// returns them to the kernel (`madvise(MADV_DONTNEED)`) and back to `PROT_NONE`, so a buffer's
/// memory is released when the pipe is, and a stale pointer into a freed buffer faults.
/// Because the allocator is first-fit over a fixed range, it fragments as `pipe_map` does:
/// a request can fail while the free total is larger than the request.
///
/// The page cache: those two system calls on free and the one on allocation cost more than
/// the kernel's whole `pipe()` + `close()` (measured: `pipe2` + two `close` 7.9 µs against the
/// kernel's 4.4 µs). So freed pages stay read-write and resident ("cached") until more than
/// `cacheBytes` of them are, and then all cached pages go back at once; an allocation whose
/// pages are all cached makes no system call. The allocator's choices do not change: cached
/// pages are free pages; only their protection and residency lag behind.
///
/// Locking: the arena has its own mutex, taken with no pipe mutex held (the seed's
/// `pipespace_new` and `pipe_free_kmem` assert the pipe mutex is not owned).
final class KVAArena: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int
    private let mutex = PipeMutex()
    /// Free extents (page offsets from `base`, page counts), sorted by offset, never adjacent.
    private var free: [(page: Int, pages: Int)]
    private(set) var allocatedBytes = 0
    /// One bit per page: read-write (allocated, or free and cached).
    private var writable: [UInt64]
    /// Free pages that are still read-write and resident, in bytes, and the most allowed.
    private(set) var cachedBytes = 0
    let cacheBytes: Int
    /// Fault injection (tests): arenaAllocate fails a request as if the map were full,
    /// arenaProtect fails the step that makes the pages read-write.
    let faults: FaultInjector

    init(size: Int, cacheBytes: Int = 0, faults: FaultInjector) throws(Errno) {
        self.faults = faults
        precondition(size > 0 && size % PAGE_SIZE == 0)
        var error: Int32 = 0
        guard let p = pb_mmap_reserve(size, &error) else { throw Errno(rawValue: error) }
        base = p
        self.size = size
        self.cacheBytes = cacheBytes
        free = [(0, size / PAGE_SIZE)]
        free.reserveCapacity(64)
        writable = [UInt64](repeating: 0, count: (size / PAGE_SIZE + 63) / 64)
    }

    deinit { _ = pb_munmap(base, size) }

    private func isWritable(_ page: Int) -> Bool { writable[page >> 6] & (1 << UInt64(page & 63)) != 0 }
    private func setWritable(_ page: Int, _ on: Bool) {
        if on { writable[page >> 6] |= 1 << UInt64(page & 63) } else { writable[page >> 6] &= ~(1 << UInt64(page & 63)) }
    }

    /// `vm_map_find(pipe_map, ..., size, VMFS_ANY_SPACE, VM_PROT_RW, ...)`: the lowest free
    /// range of `bytes` (a page multiple), made read-write; nil when no range is large enough.
    func allocate(_ bytes: Int) -> UnsafeMutableRawPointer? {
        precondition(bytes > 0 && bytes % PAGE_SIZE == 0)
        if faults.shouldFail(.arenaAllocate, bytes: bytes) { return nil }
        let pages = bytes / PAGE_SIZE
        mutex.lock()
        guard let index = free.firstIndex(where: { $0.pages >= pages }) else {
            mutex.unlock()
            return nil
        }
        let page = free[index].page
        if free[index].pages == pages {
            free.remove(at: index)
        } else {
            free[index] = (page + pages, free[index].pages - pages)
        }
        allocatedBytes += bytes
        // Take the range's cached pages out of the cache; the rest must be made read-write.
        var cached = 0
        for p in page..<(page + pages) where isWritable(p) { cached += 1 }
        cachedBytes -= cached * PAGE_SIZE
        for p in page..<(page + pages) { setWritable(p, true) }
        mutex.unlock()
        let address = base + page * PAGE_SIZE
        if faults.shouldFail(.arenaProtect, bytes: bytes) ||
            (cached < pages && pb_mprotect(address, bytes, PROT_READ | PROT_WRITE) != 0) {
            // Back to PROT_NONE and out of the cache: the range returns as never used.
            _ = pb_madvise(address, bytes, MADV_DONTNEED)
            _ = pb_mprotect(address, bytes, PROT_NONE)
            mutex.lock()
            for p in page..<(page + pages) { setWritable(p, false) }
            mutex.unlock()
            release(page: page, pages: pages)
            return nil
        }
        return address
    }

    /// `vm_map_remove(pipe_map, buffer, buffer + size)`.
    func deallocate(_ address: UnsafeMutableRawPointer, _ bytes: Int) {
        let offset = address - base
        precondition(offset >= 0 && offset + bytes <= size && offset % PAGE_SIZE == 0,
                     "pipe buffer outside the KVA arena")
        if cacheBytes == 0 {
            _ = pb_madvise(address, bytes, MADV_DONTNEED)
            _ = pb_mprotect(address, bytes, PROT_NONE)
            mutex.lock()
            for p in (offset / PAGE_SIZE)..<((offset + bytes) / PAGE_SIZE) { setWritable(p, false) }
            mutex.unlock()
            release(page: offset / PAGE_SIZE, pages: bytes / PAGE_SIZE)
            return
        }
        mutex.lock()
        defer { mutex.unlock() }
        releaseLocked(page: offset / PAGE_SIZE, pages: bytes / PAGE_SIZE)
        cachedBytes += bytes
        if cachedBytes > cacheBytes { trimLocked() }
    }

    /// Gives every cached page back to the kernel. Called with the mutex held: only free
    /// pages are touched, and no allocation can take them meanwhile.
    private func trimLocked() {
        for extent in free {
            var p = extent.page
            let end = extent.page + extent.pages
            while p < end {
                // Whole words of never-used pages are skipped at once: after a trim most of a
                // large arena's free range is such pages.
                if p & 63 == 0 && writable[p >> 6] == 0 { p += 64; continue }
                guard isWritable(p) else { p += 1; continue }
                var q = p
                while q < end && isWritable(q) { setWritable(q, false); q += 1 }
                let address = base + p * PAGE_SIZE
                _ = pb_madvise(address, (q - p) * PAGE_SIZE, MADV_DONTNEED)
                _ = pb_mprotect(address, (q - p) * PAGE_SIZE, PROT_NONE)
                p = q
            }
        }
        cachedBytes = 0
    }

    /// Free bytes still read-write and resident.
    var cached: Int {
        mutex.lock()
        defer { mutex.unlock() }
        return cachedBytes
    }

    /// Gives every cached page back to the kernel now.
    func trim() {
        mutex.lock()
        defer { mutex.unlock() }
        trimLocked()
    }

    private func release(page: Int, pages: Int) {
        mutex.lock()
        defer { mutex.unlock() }
        releaseLocked(page: page, pages: pages)
    }

    private func releaseLocked(page: Int, pages: Int) {
        allocatedBytes -= pages * PAGE_SIZE
        // Insert in order, merging with the neighbours it touches.
        var lo = 0, hi = free.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if free[mid].page < page { lo = mid + 1 } else { hi = mid }
        }
        var start = page, count = pages, insertAt = lo
        if insertAt > 0, free[insertAt - 1].page + free[insertAt - 1].pages == start {
            insertAt -= 1
            start = free[insertAt].page
            count += free[insertAt].pages
            free.remove(at: insertAt)
        }
        if insertAt < free.count, start + count == free[insertAt].page {
            count += free[insertAt].pages
            free.remove(at: insertAt)
        }
        precondition(insertAt == 0 || free[insertAt - 1].page + free[insertAt - 1].pages < start,
                     "double free in the KVA arena")
        free.insert((start, count), at: insertAt)
    }

    /// The free extents, in bytes: what a test inspects to see fragmentation.
    var freeExtents: [(offset: Int, bytes: Int)] {
        mutex.lock()
        defer { mutex.unlock() }
        return free.map { ($0.page * PAGE_SIZE, $0.pages * PAGE_SIZE) }
    }

    /// The largest contiguous free range, in bytes.
    var largestFreeExtent: Int {
        mutex.lock()
        defer { mutex.unlock() }
        return (free.map(\.pages).max() ?? 0) * PAGE_SIZE
    }
}
