import CPipeSys
#if canImport(Glibc)
import Glibc
#endif

// The page holds of the direct path: `vm_fault_quick_hold_pages` and `vm_page_unhold_pages`
// in user space, per the instance's HoldStrategy, and the validation of the next chunk's pages
// ahead (beyond the seed). How they differ from the kernel's, and why: the catalog article
// FidelityAndDifferences.

extension PipeKernel {
    /// `vm_fault_quick_hold_pages(map, addr, len, VM_PROT_READ, ma, PIPENPAGES)`: fault the
    /// range in and hold it, per the instance's HoldStrategy; nil (-1 in the kernel) when the
    /// range spans more than PIPENPAGES pages or cannot be read.
    func vm_fault_quick_hold_pages(_ base: UnsafeRawPointer?, _ len: Int,
                                   _ ahead: inout Range<Int>?)
        -> (pages: UnsafeRawPointer, npages: Int, locked: Bool)?
    {
        guard let base, len > 0, let range = page_range(base, len) else { return nil }
        let start = range.lowerBound, end = range.upperBound
        let npages = (end - start) / PAGE_SIZE
        if faults.shouldFail(.pageHold, bytes: len) { return nil }
        let pages = UnsafeRawPointer(bitPattern: start)!
        var locked = false
        switch hold {
        case .none:
            break
        case .populate, .mlock, .probe:
            let validatedAhead = ahead == range
            ahead = nil
            if validatedAhead {
                holdsAhead.add(1)  // validated while the reader copied the previous chunk
                PipeEvent.holdAhead.count()
            } else if !validate(pages, end - start) {
                return nil
            }
            if hold == .mlock {
                if !faults.shouldFail(.pageLock, bytes: end - start) && pb_mlock(pages, end - start) == 0 {
                    locked = true
                } else {
                    holdFallbacks.add(1)  // EPERM / ENOMEM (RLIMIT_MEMLOCK): populate hold
                }
            }
        }
        heldPages.add(npages)
        return (pages, npages, locked)
    }

    /// The check of a hold (and, for `populate`, the fault-in): false when the range cannot
    /// be read.
    func validate(_ pages: UnsafeRawPointer, _ length: Int) -> Bool {
        if hold == .probe { return pb_guard_probe(pages, length) == 0 }
        if populateSupported {
            return pb_madvise(UnsafeMutableRawPointer(mutating: pages), length,
                              Int32(PB_MADV_POPULATE_READ)) == 0
        }
        // Kernels before 5.14 lack MADV_POPULATE_READ: a process_vm_readv of one byte per
        // page tells a readable range from an unreadable one instead.
        return pb_probe_readable(pages, length) == 0
    }

    /// Beyond the seed: the holds ahead. A direct write of several chunks validates the pages
    /// of the chunk `pipe_write` will hand to `pipe_direct_write` next (by the rules those
    /// routines use: `direct_write_wanted`, `direct_chunk_size`, `page_range`) while the
    /// reader copies the current one, so that the next `vm_fault_quick_hold_pages` of exactly
    /// that range skips its system call. Why, and what it changes: FidelityAndDifferences.
    ///
    /// Called once per chunk, where `pipe_direct_write` is about to sleep in "pipdwt", with the
    /// pipe mutex held and the I/O lock given back. When it dropped the mutex, the reader may
    /// meanwhile have taken the whole chunk, or cleared WANTW and woken no one (`pipe_read`'s
    /// write hysteresis): then the writer tests again instead of sleeping (true: the I/O lock
    /// is retaken), or wants the reader again (a writer asleep in "pipdwt" has WANTW set, as
    /// in the seed).
    func hold_ahead_before_sleep(_ fp: File, _ wpipe: Pipe, _ uio: UIO, _ ahead: inout Range<Int>?) -> Bool {
        guard hold_ahead(wpipe, uio, fp, &ahead) else { return false }
        if wpipe.pipe_pages.cnt == 0 || wpipe.pipe_state.contains(.EOF) {
            _ = pipelock(wpipe, catch: false)
            return true
        }
        wpipe.pipe_state.insert(.WANTW)
        return false
    }

    /// Validates the next chunk's pages (see `hold_ahead_before_sleep`); drops and retakes the
    /// mutex, and returns whether it did.
    private func hold_ahead(_ wpipe: Pipe, _ uio: UIO, _ fp: File, _ ahead: inout Range<Int>?) -> Bool {
        guard hold != .none, uio.uio_resid > 0, direct_write_wanted(fp, wpipe, uio),
              let base = uio.uio_iov.pointee.iov_base,
              let range = page_range(base, direct_chunk_size(wpipe, uio)) else { return false }
        wpipe.PIPE_UNLOCK()
        let readable = validate(UnsafeRawPointer(bitPattern: range.lowerBound)!, range.count)
        wpipe.PIPE_LOCK()
        ahead = readable ? range : nil
        return true
    }

    /// The whole pages `vm_fault_quick_hold_pages` holds for `len` bytes at `base`, as
    /// addresses; nil past PIPENPAGES pages.
    func page_range(_ base: UnsafeRawPointer, _ len: Int) -> Range<Int>? {
        let start = trunc_page(Int(bitPattern: base))
        let end = round_page(Int(bitPattern: base) + len)
        return (end - start) / PAGE_SIZE <= PIPENPAGES ? start..<end : nil
    }

    /// `vm_page_unhold_pages`.
    func vm_page_unhold_pages(_ mapping: PipeMapping) {
        if mapping.locked, let pages = mapping.pages {
            _ = pb_munlock(pages, mapping.npages * PAGE_SIZE)
        }
        heldPages.add(-mapping.npages)
    }
}
