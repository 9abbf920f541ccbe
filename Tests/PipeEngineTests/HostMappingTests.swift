import Foundation
import Testing
@testable import PipeEngine

/// The arena's host mappings: what it counts is what Linux holds (/proc/self/maps), and live
/// buffers separated by free holes stay within the mapping budget instead of reaching
/// `vm.max_map_count`, where the host would refuse and the seed's counters would call it
/// fragmentation.
@Suite struct HostMappingTests {
    /// The mappings /proc/self/maps lists over [base, base + size).
    static func hostMappings(in arena: KVAArena) -> Int {
        let lo = UInt(bitPattern: arena.base), hi = lo + UInt(arena.size)
        // Read to end of file: /proc reports a size of 0, and a read sized by it stops short.
        let data = FileHandle(forReadingAtPath: "/proc/self/maps")?.readDataToEndOfFile() ?? Data()
        let maps = String(decoding: data, as: UTF8.self)
        return maps.split(separator: "\n").filter { line in
            let range = line.prefix { $0 != " " }.split(separator: "-")
            guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) else { return false }
            return start < hi && end > lo   // a run at an edge may merge with a neighbour outside
        }.count
    }

    /// Every other 4-page buffer freed: each hole costs two mappings while the budget allows,
    /// and the arena's count is the host's, exactly.
    @Test(arguments: [0, 1 << 20])
    func theArenaCountsTheHostsMappings(cacheBytes: Int) throws {
        let arena = try KVAArena(size: 4096 * PAGE_SIZE, cacheBytes: cacheBytes, faults: FaultInjector(),
                                 mappingBudget: Int.max)
        var buffers: [UnsafeMutableRawPointer] = []
        for _ in 0..<200 {
            guard case .allocated(let p) = arena.allocate(4 * PAGE_SIZE) else { Issue.record("no room"); return }
            p.storeBytes(of: 1, as: UInt8.self)
            buffers.append(p)
        }
        #expect(arena.mappings == 2 && Self.hostMappings(in: arena) == 2)
        for (i, p) in buffers.enumerated() where i % 2 == 0 { arena.deallocate(p, 4 * PAGE_SIZE) }
        arena.trim()
        #expect(arena.mappings == 201)
        #expect(Self.hostMappings(in: arena) == arena.mappings)
        for (i, p) in buffers.enumerated() where i % 2 == 1 { arena.deallocate(p, 4 * PAGE_SIZE) }
        arena.trim()
        #expect(arena.mappings == 1 && Self.hostMappings(in: arena) == 1)
        #expect(arena.allocatedBytes == 0 && arena.refusals == 0)
    }

    /// Under a budget the same holes stay read-write (their memory given back), so the
    /// arena holds no more mappings than the budget lets it, and every buffer is still
    /// allocated and freed.
    @Test func holesPastTheBudgetStayReadWrite() throws {
        let budget = 40
        // A ledger of its own: the process's counts every other test's arenas too.
        let arena = try KVAArena(size: 4096 * PAGE_SIZE, faults: FaultInjector(), mappingBudget: budget,
                                 ledger: MappingLedger())
        var buffers: [UnsafeMutableRawPointer] = []
        for _ in 0..<400 {
            guard case .allocated(let p) = arena.allocate(4 * PAGE_SIZE) else { Issue.record("no room"); return }
            buffers.append(p)
        }
        for (i, p) in buffers.enumerated() where i % 2 == 0 { arena.deallocate(p, 4 * PAGE_SIZE) }
        // 200 holes would be 401 runs; the budget stops them at 40 (or 39, by parity).
        #expect(arena.mappings <= budget && arena.mappings >= budget - 1)
        #expect(Self.hostMappings(in: arena) == arena.mappings)
        // The holes are reused as they are: a buffer allocated there is usable.
        guard case .allocated(let p) = arena.allocate(4 * PAGE_SIZE) else { Issue.record("no room"); return }
        p.storeBytes(of: 7, as: UInt8.self)
        #expect(p == buffers[0])
        arena.deallocate(p, 4 * PAGE_SIZE)
        for (i, p) in buffers.enumerated() where i % 2 == 1 { arena.deallocate(p, 4 * PAGE_SIZE) }
        #expect(arena.allocatedBytes == 0 && arena.refusals == 0)
        #expect(Self.hostMappings(in: arena) == arena.mappings)
    }

    /// 40,000 live pipes with a freed hole between each two: returned to PROT_NONE, the holes
    /// alone would need 80,000 mappings, past vm.max_map_count (65530 by default), after which
    /// the host refuses every split in the process (thread stacks and malloc's too). Within
    /// the budget, every pipe is made, no refusal happens and the arena's count is the host's.
    @Test func tensOfThousandsOfFragmentedPipes() throws {
        var config = PipeConfiguration()
        config.maxpipekva = 2 << 30
        config.maxDescriptors = 200_000
        config.arenaCacheBytes = 0
        let sys = try quietSystem(config)
        let pairs = 80_000
        var fds: [(Int32, Int32)] = []
        fds.reserveCapacity(pairs)
        for _ in 0..<pairs { fds.append(try sys.pipe2()) }
        for (i, pair) in fds.enumerated() where i % 2 == 0 {
            try sys.close(pair.0)
            try sys.close(pair.1)
        }
        #expect(try sys.sysctl("engine.pipes") == pairs / 2)
        let mappingsWithHoles = try sys.sysctl("engine.arena_mappings")
        #expect(mappingsWithHoles <= KVAArena.defaultMappingBudget)
        #expect(Self.hostMappings(in: sys.kernel.arena) == mappingsWithHoles)
        // The holes are reused: as many pipes again fit.
        for i in stride(from: 0, to: pairs, by: 2) { fds[i] = try sys.pipe2() }
        #expect(try sys.sysctl("engine.pipes") == pairs)
        #expect(try sys.sysctl("kern.ipc.pipefragretry") == 0)
        #expect(try sys.sysctl("kern.ipc.pipeallocfail") == 0)
        #expect(try sys.sysctl("engine.host_map_refusals") == 0)
        let mappings = try sys.sysctl("engine.arena_mappings")
        #expect(mappings <= KVAArena.defaultMappingBudget)
        #expect(Self.hostMappings(in: sys.kernel.arena) == mappings)
        for pair in fds {
            try sys.close(pair.0)
            try sys.close(pair.1)
        }
        #expect(sys.pipekva == 0)
    }
}
