import CPipeSys
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The fault guard of FaultGuard.c: a fault inside a guarded range is EFAULT, not a crash;
/// one outside reaches the handler that was there before.
@Suite struct FaultGuardTests {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Three pages: readable, readable, PROT_NONE.
    func region() throws -> UnsafeMutableRawPointer {
        let r = try #require(mmap(nil, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        try #require(r != MAP_FAILED)
        memset(r, 0x5a, 2 * page)
        #expect(mprotect(r + 2 * page, page, PROT_NONE) == 0)
        return r
    }

    @Test func aProbeTellsReadableFromUnreadable() throws {
        #expect(pb_guard_install() == 0)
        let r = try region()
        defer { munmap(r, 3 * page) }
        let before = pb_guard_recovered_faults()
        #expect(pb_guard_probe(r, 2 * page) == 0)
        #expect(pb_guard_probe(r + 1, 2 * page - 1) == 0)
        #expect(pb_guard_probe(r, 3 * page) == EFAULT)            // the third page
        #expect(pb_guard_probe(r + 2 * page + 100, 1) == EFAULT)  // inside it
        #expect(pb_guard_probe(r, 0) == 0)
        munmap(r, 2 * page)                                       // now unmapped
        #expect(pb_guard_probe(r, 1) == EFAULT)
        #expect(pb_guard_recovered_faults() - before >= 3)
    }

    @Test func aGuardedCopyStopsAtTheFaultWithWhatArrived() throws {
        let r = try region()
        defer { munmap(r, 3 * page) }
        var out = [UInt8](repeating: 0, count: 3 * page)
        var copied = 0
        let e = out.withUnsafeMutableBytes { pb_guard_copy($0.baseAddress!, r + 10, 3 * page - 10, &copied) }
        #expect(e == EFAULT)
        #expect(copied == 2 * page - 10)
        #expect(out[0..<copied].allSatisfy { $0 == 0x5a })
        #expect(out.withUnsafeMutableBytes { pb_guard_copy($0.baseAddress!, r, 2 * page, &copied) } == 0)
        #expect(copied == 2 * page)
    }

    /// Nested guards: a guarded copy (over its source) inside an outer guarded region (over its
    /// destination). A source fault is the inner region's and the outer goes on; a destination
    /// fault is the outer's, found past the inner frame; no frame is left behind either way.
    @Test func nestedGuardsEachCatchTheirOwn() throws {
        try #require(pb_guard_catches_faults() == 1, "a thread-sanitizer build reads by system call")
        let r = try region()
        defer { munmap(r, 3 * page) }
        var out = [UInt8](repeating: 0, count: 3 * page)
        var inner: Int32 = -1
        let sourceFault = out.withUnsafeMutableBytes { pb_guard_nested_copy($0.baseAddress!, r, 3 * page, &inner) }
        #expect(sourceFault == 0 && inner == EFAULT)
        #expect(out[0..<(2 * page)].allSatisfy { $0 == 0x5a })
        #expect(pb_guard_depth() == 0)

        let source = [UInt8](repeating: 7, count: 2 * page)
        inner = -1
        let destinationFault = source.withUnsafeBytes { pb_guard_nested_copy(r + page, $0.baseAddress!, 2 * page, &inner) }
        #expect(destinationFault == EFAULT && inner == -1)   // the inner copy never returned
        #expect(pb_guard_depth() == 0)

        inner = -1
        let clean = out.withUnsafeMutableBytes { pb_guard_nested_copy($0.baseAddress!, r, 2 * page, &inner) }
        #expect(clean == 0 && inner == 0)
        #expect(pb_guard_depth() == 0)
        #expect(pb_guard_probe(r + 2 * page, 1) == EFAULT)    // the guard still works
    }

    /// Many threads fault in their guarded ranges at once: each gets its own EFAULT.
    @Test func manyThreadsFaultingAtOnceEachRecover() throws {
        let r = try region()
        defer { munmap(r, 3 * page) }
        let bad = Int(bitPattern: r + 2 * page), good = Int(bitPattern: r)
        let threads = 8, rounds = 2000
        let failures = UnsafeMutablePointer<Int>.allocate(capacity: threads)
        failures.initialize(repeating: 0, count: threads)
        defer { failures.deallocate() }
        let failuresAddress = Int(bitPattern: failures)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let f = UnsafeMutablePointer<Int>(bitPattern: failuresAddress)!
            for i in 0..<rounds {
                let target = UnsafeRawPointer(bitPattern: i % 2 == 0 ? bad : good)!
                let e = pb_guard_probe(target, page)
                if e != (i % 2 == 0 ? EFAULT : 0) || pb_guard_depth() != 0 { f[t] += 1 }
            }
        }
        #expect((0..<threads).allSatisfy { failures[$0] == 0 })
    }

    /// A fault outside every guarded range goes to the handler installed before the guard's,
    /// and one inside is still the guard's (a forked child, whose exit status says which).
    @Test func faultsNotOursReachTheHandlerBefore() {
        #expect(pb_guard_check_chaining() == 42)
    }
}
