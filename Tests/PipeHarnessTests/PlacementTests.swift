import CPipeSys
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import PipeHarness
import PipeResults

/// Placement on this machine's node 0: threads and memory land where asked, checked with
/// sched_getcpu and move_pages; refusals name what exists. Written for any machine with at
/// least one NUMA node; a kernel without NUMA skips the node checks (and checks the refusal).
@Suite(.serialized) struct PlacementTests {
    let topology = Topology.current()

    @Test func topologyDescribesThisMachine() throws {
        #expect(!topology.usableCPUs.isEmpty)
        #expect(topology.cpus.map(\.id) == topology.usableCPUs)
        if topology.numaAvailable {
            let zero = try #require(topology.nodes.first)
            #expect(!zero.cpus.isEmpty)
            #expect(zero.distances.first == 10, "a node's distance to itself is 10")
            #expect((zero.totalBytes ?? 0) > 0)
            #expect(topology.report.contains("node \(zero.id): cpus"))
            for cpu in topology.usableCPUs { #expect(topology.nodeOf(cpu: cpu) != nil) }
        } else {
            #expect(topology.message == Topology.noNUMAMessage)
            #expect(topology.report.contains(Topology.noNUMAMessage))
        }
        print(topology.report)
    }

    @Test func cpuListsParseAndFormat() throws {
        #expect(try parseCPUList("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11])
        #expect(try parseCPUList("5") == [5])
        #expect(formatCPUList([3, 0, 1, 2, 8, 10, 11]) == "0-3,8,10-11")
        #expect(formatCPUList([]) == "none")
        #expect(throws: HarnessError.self) { try parseCPUList("3-1") }
        #expect(throws: HarnessError.self) { try parseCPUList("a") }
    }

    /// A node-bound buffer's pages are on that node; move_pages says so.
    @Test func boundBufferLandsOnItsNode() throws {
        guard topology.numaAvailable, let node = topology.nodeIDs.first else { return }
        let buffer = try AlignedBuffer(count: 10 * 4096 + 17, node: node, what: "test buffer")
        let where_ = buffer.location("test buffer")
        #expect(where_.error == nil)
        #expect(where_.pages == 11)
        #expect(where_.presentPages == 11)
        #expect(where_.pagesByNode == [.init(node: node, pages: 11)])
        #expect(where_.onRequestedNode == true)
    }

    /// numa_run_on_node keeps a thread on the node's CPUs.
    @Test func threadRunsOnItsNode() throws {
        guard topology.numaAvailable, let node = topology.nodeIDs.first else { return }
        let cpus = topology.usableCPUs(onNode: node)
        let worker = try WorkerThread<[Int]>.start {
            try applyThreadPlacement(cpu: nil, node: node)
            var seen: [Int] = []
            for _ in 0..<50 { seen.append(Int(pb_sched_getcpu())); sched_yield() }
            return seen
        }
        let seen = try worker.join()
        #expect(seen.allSatisfy(cpus.contains), "CPUs seen \(seen), node \(node) has \(cpus)")
    }

    /// same-node on node 0, stream over the engine: both threads ran on node 0's CPUs and both
    /// user buffers and the engine arena's pages are on node 0.
    @Test(arguments: [TransportKind.engine, .linuxPipe, .memcpy])
    func sameNodeStreamLandsOnNodeZero(kind: TransportKind) throws {
        guard topology.numaAvailable else { return }
        let node = topology.nodeIDs[0]
        let placement = try Placement.preset(.sameNode, topology: topology, node: node)
        #expect(placement.writerNode == node && placement.readerNode == node && placement.memoryNode == node)
        // Engine writes below pipe_mindirect go through the pipe's buffer in the arena (a
        // direct write never touches it: the reader copies from the writer's pages).
        let writeSize = kind == .engine ? 4096 : 65536
        let r = try StreamWorkload.run(StreamConfig(
            transport: kind, totalBytes: 1 << 20, writeSize: writeSize, readSize: 65536, verify: true, placement: placement))
        #expect(r.integrityOK)
        #expect(r.placement == placement)
        let cpus = topology.usableCPUs(onNode: node)
        #expect(r.writerCPUsSeen.allSatisfy(cpus.contains))
        if kind != .memcpy { #expect(r.readerCPUsSeen.allSatisfy(cpus.contains)) }
        let w = try #require(r.writerMemory)
        let rd = try #require(r.readerMemory)
        #expect(w.onRequestedNode == true, "\(w)")
        #expect(rd.onRequestedNode == true, "\(rd)")
        if kind == .engine {
            let arena = try #require(r.arenaMemory)
            #expect(arena.error == nil)
            #expect(arena.presentPages > 0, "the workload pipe's buffer pages are present")
            #expect(arena.onRequestedNode == true, "\(arena)")
        } else {
            #expect(r.arenaMemory == nil)
        }
    }

    /// Unplaced runs still record where memory went (first touch) and which CPUs ran.
    @Test func unplacedStreamStillRecordsMemory() throws {
        let r = try StreamWorkload.run(StreamConfig(transport: .engine, totalBytes: 256 << 10, verify: true))
        #expect(r.placement == nil)
        #expect(r.writerCPUsSeen.count == 2 && r.readerCPUsSeen.count == 2)
        let w = try #require(r.writerMemory)
        if topology.numaAvailable {
            #expect(w.error == nil && w.presentPages > 0)
            #expect(w.onRequestedNode == nil)
        }
    }

    @Test func sameCoreAndCrossCorePinWhereAsked() throws {
        let same = try Placement.preset(.sameCore, topology: topology)
        #expect(same.writerCPU != nil && same.writerCPU == same.readerCPU)
        let r = try StreamWorkload.run(StreamConfig(transport: .linuxPipe, totalBytes: 512 << 10, verify: true, placement: same))
        #expect(r.writerCPUsSeen == [same.writerCPU!, same.writerCPU!])
        #expect(r.readerCPUsSeen == [same.readerCPU!, same.readerCPU!])

        guard topology.usableCPUs.count >= 2 else {
            #expect(throws: HarnessError.self) { try Placement.preset(.crossCore, topology: topology) }
            return
        }
        let cross = try Placement.preset(.crossCore, topology: topology)
        #expect(cross.writerCPU != cross.readerCPU)
        let p = try PingPongWorkload.run(PingPongConfig(
            transport: .engine, messageSize: 64, iterations: 200, warmupIterations: 20, verify: true, placement: cross)).result
        #expect(p.integrityOK)
        #expect(p.clientCPUsSeen == [cross.writerCPU!, cross.writerCPU!])
        #expect(p.serverCPUsSeen == [cross.readerCPU!, cross.readerCPU!])
        if topology.numaAvailable {
            #expect(p.clientMemory?.onRequestedNode == true)
            #expect(p.serverMemory?.onRequestedNode == true)
            #expect(p.arenaMemory?.onRequestedNode == true)
        }
    }

    // MARK: refusals

    @Test func crossNodeOnOneNodeIsRefusedNamingTheNodes() throws {
        guard topology.nodes.count < 2 else { return }
        do {
            _ = try Placement.preset(.crossNode, topology: topology)
            Issue.record("cross-node was not refused")
        } catch let e as HarnessError {
            let text = e.description
            print(text)
            if topology.numaAvailable {
                #expect(text.contains("cross-node placement needs two NUMA nodes"))
                #expect(text.contains("node \(topology.nodeIDs[0]) only"))
            } else {
                #expect(text.contains(Topology.noNUMAMessage))
            }
        }
    }

    @Test func missingNodeIsRefusedBeforeLibnumaSeesIt() throws {
        let missing = (topology.nodeIDs.max() ?? 0) + 3
        var placement = Placement()
        placement.readerNode = missing
        do {
            _ = try StreamWorkload.run(StreamConfig(transport: .linuxPipe, totalBytes: 4096, placement: placement))
            Issue.record("a missing node was not refused")
        } catch let e as HarnessError {
            print(e)
            if topology.numaAvailable {
                #expect(e.description.contains("NUMA node \(missing) (reader thread) does not exist"))
                #expect(e.description.contains(topology.nodeListText))
            } else {
                #expect(e.description.contains(Topology.noNUMAMessage))
            }
        }
        // Memory nodes too, for every workload.
        var memory = Placement()
        memory.memoryNode = missing
        #expect(throws: HarnessError.self) {
            _ = try PingPongWorkload.run(PingPongConfig(transport: .linuxPipe, iterations: 10, placement: memory))
        }
        #expect(throws: HarnessError.self) {
            _ = try PairsWorkload.run(PairsConfig(transport: .linuxPipe, pairs: 2, bytesPerPair: 4096, placements: [memory, memory]))
        }
        #expect(throws: HarnessError.self) {
            _ = try Placement.preset(.sameNode, topology: topology, node: missing)
        }
    }

    @Test func missingCPUIsRefused() throws {
        let missing = (topology.usableCPUs.max() ?? 0) + 5
        do {
            _ = try StreamWorkload.run(StreamConfig(transport: .linuxPipe, totalBytes: 4096, writerCPU: missing))
            Issue.record("a missing CPU was not refused")
        } catch let e as HarnessError {
            print(e)
            #expect(e == .invalidArgument(
                "writer CPU \(missing) does not exist or is not available to this process; usable CPUs: \(formatCPUList(topology.usableCPUs))"))
        }
    }

    @Test func cpuOnAnotherNodeIsRefused() throws {
        // A CPU with a node that is not its own (on a one-node machine: a node that does not
        // exist, which is refused first, by name).
        guard topology.numaAvailable, let cpu = topology.usableCPUs.first else { return }
        let home = topology.nodeOf(cpu: cpu)!
        let other = topology.nodeIDs.first { $0 != home } ?? home + 1
        let p = Placement(writerCPU: cpu, writerNode: other)
        #expect(throws: HarnessError.self) { try p.validate(against: topology) }
    }

    // MARK: presets on a machine that is not this one

    /// Four nodes of one CPU each, distances 10 + 10·|i − j| (what scripts/numa-vm --nodes 4 boots).
    static func fourNodes() -> Topology {
        let nodes = (0..<4).map { i in
            Topology.Node(id: i, cpus: [i], totalBytes: 1 << 29, freeBytes: 1 << 28, distances: (0..<4).map { 10 + 10 * abs(i - $0) })
        }
        return Topology(numaAvailable: true, message: nil, nodes: nodes, usableCPUs: [0, 1, 2, 3], onlineCPUs: 4,
                        cpus: (0..<4).map { Topology.CPU(id: $0, node: $0, core: $0, package: $0, siblings: [$0]) })
    }

    /// cross-node takes the node farthest from the writer's unless told; ties go to the lowest id.
    @Test func crossNodeGoesToTheFarthestNode() throws {
        let t = Self.fourNodes()
        #expect(t.distance(0, 3) == 40 && t.distance(2, 1) == 20)
        let p = try Placement.preset(.crossNode, topology: t)
        #expect(p.writerNode == 0 && p.readerNode == 3)
        #expect(p.writerMemoryNode == 0 && p.readerMemoryNode == 3 && p.arenaNode == 0)
        #expect(try Placement.preset(.crossNode, topology: t, node: 1).readerNode == 3)
        #expect(try Placement.preset(.crossNode, topology: t, node: 2).readerNode == 0)   // 30 beats 20, 20
        #expect(try Placement.preset(.crossNode, topology: t, node: 3, otherNode: 2).readerNode == 2)
        // Equal distances: the lowest id.
        var flat = t
        for i in flat.nodes.indices { flat.nodes[i].distances = (0..<4).map { $0 == i ? 10 : 20 } }
        #expect(try Placement.preset(.crossNode, topology: flat, node: 2).readerNode == 0)
        #expect(try Placement.preset(.sameNode, topology: t, node: 2).memoryNode == 2)
        #expect(throws: HarnessError.self) { try Placement.preset(.crossNode, topology: t, node: 1, otherNode: 1) }
    }

    /// Pages bound to a node and found elsewhere are counted, per buffer and in the row, and
    /// the run's summary warns; pages where asked, or with no node asked, are not.
    @Test func pagesOffTheNodeAskedAreReported() throws {
        func location(_ what: String, asked: Int?, _ byNode: [(Int, Int)]) -> MemoryLocation {
            MemoryLocation(what: what, requestedNode: asked, bytes: 16 * 4096, pages: 16,
                           pagesByNode: byNode.map { .init(node: $0.0, pages: $0.1) }, pagesNotPresent: 0, pagesOtherStatus: 0)
        }
        let moved = location("writer buffer", asked: 0, [(0, 4), (1, 12)])
        #expect(moved.pagesOffRequestedNode == 12 && moved.onRequestedNode == false && moved.dominantNode == 1)
        let home = location("reader buffer", asked: 0, [(0, 16)])
        #expect(home.pagesOffRequestedNode == 0 && home.onRequestedNode == true)
        let free = location("reader buffer", asked: nil, [(1, 16)])
        #expect(free.pagesOffRequestedNode == nil)

        var rows: [[String]] = []
        for (k, writer) in [home, moved, home].enumerated() {
            var row = ResultsRow()
            row.set("label", "stream engine")
            row.int("repetition", k)
            row.int("memory_node", 0)
            row.memory(writer: writer, reader: home, arena: home)
            rows.append(row.cells)
        }
        var unplaced = ResultsRow()
        unplaced.set("label", "stream linux-pipe")
        unplaced.memory(writer: free, reader: free, arena: nil)
        rows.append(unplaced.cells)
        let t = ResultsTable(rows: rows)
        #expect(t.rows.indices.map { t.value($0, "memory_pages_misplaced") } == ["0", "12", "0", ""])
        let warnings = ResultsSummary.placementWarnings(t)
        #expect(warnings.count == 1)
        #expect(warnings.first?.hasPrefix("stream engine: pages found off node 0 in repetition 1 (up to 12 pages; most pages on: writer 1, reader 0, arena 0") == true,
                "\(warnings)")
    }
}
