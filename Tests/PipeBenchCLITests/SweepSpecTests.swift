import PipeEngine
import Testing
@testable import PipeHarness

@Suite struct SizeParsingTests {
    @Test(arguments: [
        ("64", 64), ("4K", 4096), ("4k", 4096), ("4KiB", 4096), ("4KB", 4096), ("1M", 1 << 20),
        ("1G", 1 << 30), ("2T", 2 << 40), (" 8K ", 8192), ("0", 0), ("512B", 512),
    ])
    func parses(_ text: String, _ expected: Int) throws {
        #expect(try SizeSpec.parse(text) == expected)
    }

    @Test(arguments: ["", "K", "4Q", "1.5M", "-4K", "4 K", "0x10", "4KK", "99999999999999999999", "16777216T"])
    func refusesMalformed(_ text: String) {
        #expect(throws: SweepError.self) { try SizeSpec.parse(text) }
    }

    @Test func malformedSizeMessageSaysWhatToDo() {
        do {
            _ = try SizeSpec.parse("4Q")
            Issue.record("no error")
        } catch let e as SweepError {
            #expect(e.message.contains("malformed size '4Q'"))
            #expect(e.message.contains("e.g. 64, 4K, 1M"))
        } catch { Issue.record("\(error)") }
    }

    @Test func formatsShortestExactSpelling() throws {
        #expect(SizeSpec.format(64) == "64")
        #expect(SizeSpec.format(4096) == "4K")
        #expect(SizeSpec.format(1536) == "1536")
        #expect(SizeSpec.format(3 << 20) == "3M")
        #expect(SizeSpec.format(1 << 30) == "1G")
        #expect(SizeSpec.format(0) == "0")
        for n in [1, 1000, 4096, 12288, 1 << 20, 5 << 30] {
            #expect(try SizeSpec.parse(SizeSpec.format(n)) == n)
        }
    }
}

@Suite struct ListAndRangeTests {
    @Test func sizeRangesDouble() throws {
        #expect(try ListSpec.sizes("64,4K..64K", flag: "--write-size") == [64, 4096, 8192, 16384, 32768, 65536])
        #expect(try ListSpec.sizes("4K..1M", flag: "--write-size").count == 9)
        #expect(try ListSpec.sizes("4K", flag: "--x") == [4096])
        // The end need not be on the doubling sequence: stop at the last value not above it.
        #expect(try ListSpec.sizes("3K..13K", flag: "--x") == [3072, 6144, 12288])
        // Duplicates collapse, order stays.
        #expect(try ListSpec.sizes("8K,4K..16K", flag: "--x") == [8192, 4096, 16384])
    }

    @Test func integerRangesCount() throws {
        #expect(try ListSpec.integers("0,50,75,90", flag: "--kva-tier") == [0, 50, 75, 90])
        #expect(try ListSpec.integers("0..3", flag: "--writer-cpu") == [0, 1, 2, 3])
    }

    @Test(arguments: ["1M..4K", "0..4K", "4K,,8K", "4K..", "..4K", ",4K"])
    func refusesBadLists(_ text: String) {
        #expect(throws: SweepError.self) { try ListSpec.sizes(text, flag: "--write-size") }
    }

    @Test func axisExpansionUsesCanonicalSpelling() throws {
        #expect(try SweepAxis.writeSize.expand("4096,8K") == ["4K", "8K"])
        #expect(try SweepAxis.total.expand("auto") == ["auto"])
        #expect(try SweepAxis.transport.expand("engine,linux-pipe,engine") == ["engine", "linux-pipe"])
    }

    @Test func waitStrategies() throws {
        #expect(try SweepPoint.parseWait("park") == 0)
        #expect(try SweepPoint.parseWait("spin") == 50_000)
        #expect(try SweepPoint.parseWait("spin:2000") == 2000)
        #expect(try SweepPoint.parseWait("spin:5us") == 5000)
        #expect(try SweepPoint.parseWait("spin:1ms") == 1_000_000)
        #expect(throws: SweepError.self) { try SweepPoint.parseWait("busy") }
        #expect(throws: SweepError.self) { try SweepPoint.parseWait("spin:-1") }
    }
}

@Suite struct ShardTests {
    @Test(arguments: [1, 2, 3, 5, 8, 13])
    func shardsPartitionTheSweep(_ n: Int) throws {
        for total in [0, 1, 7, 24, 100] {
            let items = Array(0..<total)
            var union: [Int] = []
            for i in 1...n {
                let part = try Shard(index: i, count: n).select(items)
                #expect(part == part.sorted(), "a shard keeps the sweep's order")
                #expect(part.count >= total / n && part.count <= total / n + 1, "shards are balanced")
                union += part
            }
            #expect(union.count == total, "disjoint: no item in two shards")
            #expect(Set(union) == Set(items), "the union is the whole sweep")
        }
    }

    @Test func parsing() throws {
        #expect(try Shard(parsing: "2/8") == Shard(index: 2, count: 8))
        for bad in ["0/4", "5/4", "1/0", "2", "a/b", "1/2/3", "-1/2"] {
            #expect(throws: SweepError.self) { try Shard(parsing: bad) }
        }
    }
}

@Suite struct SweepExpansionTests {
    @Test func productAndIrrelevantAxesDropped() throws {
        var spec = SweepSpecification()
        try spec.set(.transport, ["engine,linux-pipe"])
        try spec.set(.writeSize, ["4K..16K"])
        try spec.set(SweepAxis(rawValue: "mindirect")!, ["4K,8K"])
        let points = try spec.points()
        // engine: 3 write sizes × 2 mindirect; linux-pipe: 3 write sizes (mindirect does not apply).
        #expect(points.count == 9)
        #expect(points.filter { $0.transport == .linuxPipe }.allSatisfy { $0.engine.isEmpty })
        #expect(Set(points.map(\.label)).count == points.count, "labels are unique")
        #expect(points.contains { $0.label == "stream engine w=8K md=4K" })
        #expect(points.contains { $0.label == "stream linux-pipe w=16K" })
    }

    @Test func mindirectAtPipeBufUsesTheEngineValidationMessage() throws {
        var spec = SweepSpecification()
        try spec.set(SweepAxis(rawValue: "mindirect")!, ["512"])
        do {
            _ = try spec.points()
            Issue.record("no error")
        } catch let e as SweepError {
            #expect(e.message.contains("pipe_mindirect = 512 must be greater than PIPE_BUF (512)"))
            #expect(e.message.contains("--mindirect"))
        }
    }

    @Test func unknownValuesAreRefused() throws {
        var p = SweepPoint()
        #expect(throws: SweepError.self) { try p.apply(.transport, "carrier-pigeon") }
        #expect(throws: SweepError.self) { try p.apply(SweepAxis(rawValue: "hold")!, "glue") }
        #expect(throws: SweepError.self) { try p.apply(SweepAxis(rawValue: "piperesize")!, "maybe") }
        #expect(throws: SweepError.self) { try p.apply(.workload, "nap") }
    }

    /// --kernel-pipe-size: power-of-two page multiples only, applied to the kernel-pipe
    /// transports and dropped from the others (refused when it applies to none).
    @Test func kernelPipeSize() throws {
        var spec = SweepSpecification()
        try spec.set(.transport, ["engine,linux-pipe,linux-vmsplice,unix-socket"])
        try spec.set(.kernelPipeSize, ["64K..256K"])
        let points = try spec.points()
        // engine and unix-socket once each; the two kernel transports at 64K, 128K, 256K.
        #expect(points.count == 8)
        #expect(points.filter { $0.transport == .engine || $0.transport == .unixSocket }.allSatisfy { $0.kernelPipeSize == nil })
        #expect(points.contains { $0.label == "stream linux-vmsplice kps=128K" })
        #expect(points.contains { $0.label == "stream engine" })
        let vmsplice = try #require(points.first { $0.transport == .linuxVmsplice && $0.kernelPipeSize == 256 << 10 })
        let workload = try vmsplice.makeWorkload()
        #expect(workload.kind == .stream)
        let config = try #require(workload.configuration as? StreamConfig)
        #expect(config.options.kernelPipeSize == 256 << 10)

        // A single value is still named, so that `run` tables say what the pipe was.
        var one = SweepSpecification()
        try one.set(.transport, ["linux-pipe"])
        try one.set(.workload, ["pingpong"])
        try one.set(.kernelPipeSize, ["1M"])
        #expect(try one.points().map(\.label) == ["pingpong linux-pipe kps=1M"])

        var engineOnly = SweepSpecification()
        try engineOnly.set(.transport, ["engine"])
        try engineOnly.set(.kernelPipeSize, ["1M"])
        #expect(throws: SweepError.self) { try engineOnly.points() }

        var p = SweepPoint()
        for bad in ["5000", "2K", "96K", "2G", "0"] {
            #expect(throws: SweepError.self, "\(bad)") { try p.apply(.kernelPipeSize, bad) }
        }
        try p.apply(.kernelPipeSize, "4K")
        #expect(p.kernelPipeSize == 4096)
    }

    @Test func kernelPipeSizeIsBoundedByPipeMaxSizeUnlessPrivileged() throws {
        try SweepPoint.checkKernelPipeSize(1 << 20, pipeMaxSize: 1 << 20, privileged: false)
        try SweepPoint.checkKernelPipeSize(4 << 20, pipeMaxSize: 1 << 20, privileged: true)
        do {
            try SweepPoint.checkKernelPipeSize(2 << 20, pipeMaxSize: 1 << 20, privileged: false)
            Issue.record("no error")
        } catch let e as SweepError {
            #expect(e.message.contains("above /proc/sys/fs/pipe-max-size (1M)"), "\(e.message)")
            #expect(!e.message.contains("\n"))
        }
        // 64 KiB pages (arm64, ppc64): 16K is below a page.
        #expect(throws: SweepError.self) { try SweepPoint.checkKernelPipeSize(16 << 10, pageSize: 64 << 10) }
        try SweepPoint.checkKernelPipeSize(64 << 10, pageSize: 64 << 10)
    }

    @Test func placementIsCheckedAgainstTheMachine() throws {
        let env = EnvironmentInfo.capture()
        var p = SweepPoint()
        p.writerNode = 4096
        #expect(throws: SweepError.self) { try p.validatePlacement(env) }
        p = SweepPoint()
        p.readerCPU = env.onlineCPUs
        #expect(throws: SweepError.self) { try p.validatePlacement(env) }
        p = SweepPoint()
        p.writerCPU = 0
        try p.validatePlacement(env)
    }
}
