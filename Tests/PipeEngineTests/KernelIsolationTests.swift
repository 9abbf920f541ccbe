import Foundation
import Glibc
import Synchronization
import Testing
@testable import PipeEngine

/// Several simulated kernels in one process never touch each other's files: a reference that
/// the lock-free `fget` took on a file that was closed and recycled under it goes back to
/// the kernel that owns the file, so every kernel's `pipekva`, pipe count and arena are
/// exactly what its own pipes explain.
@Suite struct KernelIsolationTests {
    /// `fget` on kernel A, stopped inside its race window: the descriptor is closed there and
    /// kernel B makes a pipe at once. Had the two kernels shared one file zone, B's new file
    /// would take the closed file's words, A's `fget` would take a reference on it, and A's
    /// `fdrop` would close B's pipe in A's kernel (A's arena freeing B's buffer).
    @Test func aReferenceTakenTooLateGoesBackToItsOwnKernel() throws {
        let a = try PipeSystem(), b = try PipeSystem()
        let (r, w) = try a.pipe()
        let other = Locked<(Int32, Int32)?>(nil)
        let closedInWindow = Locked(false)
        let calls = Locked<[DescriptorTable.RaceWindowPoint]>([])
        a.table.raceWindow = { point in
            calls.withLock { $0.append(point) }
            switch point {
            case .beforeAcquire:
                guard other.withLock({ $0 == nil }) else { return }
                try! a.close(r)                            // its file and its words go
                let pair = try! b.pipe()                   // B's new files take words
                other.withLock { $0 = pair }
            case .afterAcquire:
                if let pair = other.withLock({ $0 }) {
                    try! b.close(pair.0)
                    closedInWindow.withLock { $0 = true }
                }
            }
        }
        var byte: UInt8 = 0
        expectErrno(.badFileDescriptor) { try a.read(r, &byte, 1) }
        a.table.raceWindow = nil
        #expect(calls.withLock { $0 } == [.beforeAcquire], "fget took a reference on another file")
        let pair = try #require(other.withLock { $0 })
        if !closedInWindow.withLock({ $0 }) { try b.close(pair.0) }
        // B's pipe is B's alone: its reader closed, its writer open in B.
        expectErrno(.brokenPipe) { try b.write(pair.1, &byte, 1) }
        try b.close(pair.1)
        try a.close(w)
        for system in [a, b] { try expectEmpty(system) }
    }

    /// Reads and closes race on kernel A (descriptors reused under the readers) while kernel B
    /// creates and closes pipes as fast as it can; afterwards both are exactly empty.
    @Test func kernelsRacingSideBySideKeepTheirOwnAccounts() throws {
        let a = try PipeSystem(), b = try PipeSystem()
        let rounds = 3000
        let current = Atomic<Int32>(-1)
        let done = Atomic<Bool>(false)
        let readers = (0..<2).map { _ in
            TestThread {
                var byte: UInt8 = 0
                while !done.load(ordering: .acquiring) {
                    let fd = current.load(ordering: .acquiring)
                    if fd >= 0 { _ = try? a.read(fd, &byte, 1) }
                }
            }
        }
        let creator = TestThread {
            for _ in 0..<rounds {
                guard let (r, w) = try? b.pipe2(O_NONBLOCK) else { continue }
                var byte: UInt8 = 1
                _ = try? b.write(w, &byte, 1)
                try? b.close(r)
                try? b.close(w)
            }
        }
        var byte: UInt8 = 7
        for _ in 0..<rounds {
            let (r, w) = try a.pipe2(O_NONBLOCK)
            _ = try a.write(w, &byte, 1)
            current.store(r, ordering: .releasing)
            try a.close(r)
            try a.close(w)
        }
        done.store(true, ordering: .releasing)
        #expect(creator.join())
        #expect(readers.allSatisfy { $0.join() })
        for system in [a, b] { try expectEmpty(system) }
    }

    private func expectEmpty(_ system: PipeSystem, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try system.sysctl("engine.pipes") == 0, sourceLocation: sourceLocation)
        #expect(try system.sysctl("kern.ipc.pipekva") == 0, sourceLocation: sourceLocation)
        #expect(system.arenaAllocatedBytes == 0, sourceLocation: sourceLocation)
        #expect(system.table.count == 0, sourceLocation: sourceLocation)
    }
}
