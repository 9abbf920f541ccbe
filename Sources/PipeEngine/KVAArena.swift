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
/// Host mappings: Linux keeps each run of pages of one protection as a mapping of its own
/// (merging neighbours that share it), and refuses an `mprotect` that would split one past
/// `vm.max_map_count` (65530 by default) mappings in the process. Live buffers separated by
/// free `PROT_NONE` holes cost two mappings each, so tens of thousands of them would reach
/// that limit long before `maxpipekva`. The arena therefore counts its runs (`hostMappings`)
/// against a budget shared by every arena in the process (half of `vm.max_map_count`): a freed
/// range whose return to `PROT_NONE` would open a new run past the budget stays read-write,
/// its memory given back (`MADV_DONTNEED`) all the same; an allocation never opens a run
/// (first fit starts at a free extent's lowest page, next to a live buffer). A refusal the
/// host still makes (the rest of the process holds the mappings) is not "no room": it is
/// counted apart (`hostRefusals`) and reported as such.
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
    /// One bit per page: free, read-write and resident (the cache), a subset of `writable`.
    private var cachedBits: [UInt64]
    /// Free pages that are still read-write and resident, in bytes, and the most allowed.
    private(set) var cachedBytes = 0
    /// Runs of pages of one protection in the arena: the host mappings it holds.
    private(set) var hostMappings = 1
    /// The most runs every arena of the process may hold together.
    let mappingBudget: Int
    /// `mprotect` calls the host refused (ENOMEM: its mapping limit, not the arena's room).
    private(set) var hostRefusals = 0
    /// Where the runs are counted against the budget: every arena of the process together
    /// (`MappingLedger.process`), or a ledger of its own (tests).
    let ledger: MappingLedger
    /// Half of the host's per-process mapping limit (`vm.max_map_count`).
    static let defaultMappingBudget = max(pb_max_map_count(), 1024) / 2
    let cacheBytes: Int
    /// Fault injection (tests): arenaAllocate fails a request as if the map were full,
    /// arenaProtect fails the step that makes the pages read-write.
    let faults: FaultInjector

    init(size: Int, cacheBytes: Int = 0, faults: FaultInjector,
         mappingBudget: Int = KVAArena.defaultMappingBudget,
         ledger: MappingLedger = .process) throws(Errno) {
        self.faults = faults
        self.mappingBudget = mappingBudget
        self.ledger = ledger
        precondition(size > 0 && size % PAGE_SIZE == 0)
        var error: Int32 = 0
        guard let p = pb_mmap_reserve(size, &error) else { throw Errno(rawValue: error) }
        base = p
        self.size = size
        self.cacheBytes = cacheBytes
        free = [(0, size / PAGE_SIZE)]
        free.reserveCapacity(64)
        writable = [UInt64](repeating: 0, count: (size / PAGE_SIZE + 63) / 64)
        cachedBits = writable
        ledger.runs.add(1)
    }

    deinit {
        ledger.runs.add(-hostMappings)
        _ = pb_munmap(base, size)
    }

    private func isCached(_ page: Int) -> Bool { cachedBits[page >> 6] & (1 << UInt64(page & 63)) != 0 }
    private func setCached(_ page: Int, _ on: Bool) {
        if on { cachedBits[page >> 6] |= 1 << UInt64(page & 63) } else { cachedBits[page >> 6] &= ~(1 << UInt64(page & 63)) }
    }

    /// Protection changes between neighbouring pages in [lo, hi) (runs = changes + 1).
    private func protectionChanges(_ lo: Int, _ hi: Int) -> Int {
        var n = 0
        var p = max(lo, 0) + 1
        let end = min(hi, size / PAGE_SIZE)
        while p < end {
            if isWritable(p) != isWritable(p - 1) { n += 1 }
            p += 1
        }
        return n
    }

    /// Sets the protection bits of [page, page + pages) and the run count. Mutex held.
    private func setWritableLocked(_ page: Int, _ pages: Int, _ on: Bool) {
        let before = protectionChanges(page - 1, page + pages + 1)
        for p in page..<(page + pages) { setWritable(p, on) }
        let delta = protectionChanges(page - 1, page + pages + 1) - before
        hostMappings += delta
        ledger.runs.add(delta)
    }

    /// Whether [page, page + pages) may go back to PROT_NONE within the mapping budget.
    private func mayProtectLocked(_ page: Int, _ pages: Int) -> Bool {
        let before = protectionChanges(page - 1, page + pages + 1)
        let left = page > 0 && isWritable(page - 1)
        let right = page + pages < size / PAGE_SIZE && isWritable(page + pages)
        let after = (page > 0 && left ? 1 : 0) + (right ? 1 : 0)
        let delta = after - before
        return delta <= 0 || ledger.runs.load() + delta <= mappingBudget
    }

    /// Gives the free range [page, page + pages) back to the host: its memory always, its
    /// protection (PROT_NONE) when the mapping budget allows. Mutex held.
    private func returnToHostLocked(_ page: Int, _ pages: Int) {
        let address = base + page * PAGE_SIZE
        _ = pb_madvise(address, pages * PAGE_SIZE, MADV_DONTNEED)
        PipeEvent.arenaHostCall.count()
        for p in page..<(page + pages) { setCached(p, false) }
        if mayProtectLocked(page, pages) {
            PipeEvent.arenaHostCall.count()
            if pb_mprotect(address, pages * PAGE_SIZE, PROT_NONE) == 0 { setWritableLocked(page, pages, false) }
        }
    }

    private func isWritable(_ page: Int) -> Bool { writable[page >> 6] & (1 << UInt64(page & 63)) != 0 }
    private func setWritable(_ page: Int, _ on: Bool) {
        if on { writable[page >> 6] |= 1 << UInt64(page & 63) } else { writable[page >> 6] &= ~(1 << UInt64(page & 63)) }
    }

    enum Allocation {
        case allocated(UnsafeMutableRawPointer)
        /// No free range is large enough (`vm_map_find`'s KERN_NO_SPACE).
        case noRoom
        /// The host refused to make the range read-write (its mapping limit).
        case hostRefused
    }

    /// `vm_map_find(pipe_map, ..., size, VMFS_ANY_SPACE, VM_PROT_RW, ...)`: the lowest free
    /// range of `bytes` (a page multiple), made read-write.
    func allocate(_ bytes: Int) -> Allocation {
        precondition(bytes > 0 && bytes % PAGE_SIZE == 0)
        if faults.shouldFail(.arenaAllocate, bytes: bytes) { return .noRoom }
        let pages = bytes / PAGE_SIZE
        mutex.lock()
        guard let index = free.firstIndex(where: { $0.pages >= pages }) else {
            mutex.unlock()
            return .noRoom
        }
        let page = free[index].page
        if free[index].pages == pages {
            free.remove(at: index)
        } else {
            free[index] = (page + pages, free[index].pages - pages)
        }
        allocatedBytes += bytes
        // Take the range's cached pages out of the cache; the rest must be made read-write.
        var cached = 0, writableAlready = 0
        for p in page..<(page + pages) {
            if isCached(p) { cached += 1; setCached(p, false) }
            if isWritable(p) { writableAlready += 1 }
        }
        cachedBytes -= cached * PAGE_SIZE
        let address = base + page * PAGE_SIZE
        var refused = faults.shouldFail(.arenaProtect, bytes: bytes)
        if !refused && writableAlready < pages {
            PipeEvent.arenaHostCall.count()
            refused = pb_mprotect(address, bytes, PROT_READ | PROT_WRITE) != 0
        }
        if refused {
            // The host refused (its mapping limit): the range returns as free, its memory given
            // back; its protection is unchanged.
            hostRefusals += 1
            PipeEvent.arenaHostCall.count()
            _ = pb_madvise(address, bytes, MADV_DONTNEED)
            releaseLocked(page: page, pages: pages)
            mutex.unlock()
            return .hostRefused
        }
        setWritableLocked(page, pages, true)
        mutex.unlock()
        PipeEvent.arenaAllocate.count()
        if writableAlready == pages { PipeEvent.arenaCacheHit.count() }
        return .allocated(address)
    }

    /// `vm_map_remove(pipe_map, buffer, buffer + size)`.
    func deallocate(_ address: UnsafeMutableRawPointer, _ bytes: Int) {
        let offset = address - base
        precondition(offset >= 0 && offset + bytes <= size && offset % PAGE_SIZE == 0,
                     "pipe buffer outside the KVA arena")
        mutex.lock()
        defer { mutex.unlock() }
        releaseLocked(page: offset / PAGE_SIZE, pages: bytes / PAGE_SIZE)
        if cacheBytes == 0 {
            returnToHostLocked(offset / PAGE_SIZE, bytes / PAGE_SIZE)
            return
        }
        for p in (offset / PAGE_SIZE)..<((offset + bytes) / PAGE_SIZE) { setCached(p, true) }
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
                // Whole words of uncached pages are skipped at once: after a trim most of a
                // large arena's free range is such pages.
                if p & 63 == 0 && cachedBits[p >> 6] == 0 { p += 64; continue }
                guard isCached(p) else { p += 1; continue }
                var q = p
                while q < end && isCached(q) { q += 1 }
                returnToHostLocked(p, q - p)
                p = q
            }
        }
        cachedBytes = 0
    }

    /// `hostMappings` and `hostRefusals`, read under the mutex.
    var mappings: Int { mutex.lock(); defer { mutex.unlock() }; return hostMappings }
    var refusals: Int { mutex.lock(); defer { mutex.unlock() }; return hostRefusals }

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

/// Host mappings held by the arenas that share a budget: the process's, by default.
final class MappingLedger: @unchecked Sendable {
    let runs = AtomicWord(0)  // atomics only
    static let process = MappingLedger()
}
