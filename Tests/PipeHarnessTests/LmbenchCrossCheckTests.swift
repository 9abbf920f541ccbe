import Foundation
import Testing
@testable import PipeHarness
@testable import PipeResults

/// Runs scripts/lmbench-pipe.c (bw_pipe / lat_pipe, the lmbench way) and the harness's
/// linux-pipe transport in the same test, interleaved, same-core and cross-core, and prints
/// both. No timing assertions: the numbers go into the README's agreement table. Sizes are
/// small by default; `PIPEBENCH_CROSSCHECK_SCALE=N` multiplies bytes and round trips.
@Suite(.serialized) struct LmbenchCrossCheckTests {
    static let scriptsDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts")

    /// Where this machine has no C compiler the two tests below are reported as skipped
    /// (not passed); `scripts/setup` installs one.
    static let hasCompiler = runCommand(["cc", "--version"]) != nil

    /// Compiles scripts/`name`.c with `cc` into a fresh directory; records an issue (and
    /// returns nil) when the source is missing or does not compile.
    static func compile(_ name: String = "lmbench-pipe") throws -> String? {
        let source = scriptsDirectory.appendingPathComponent("\(name).c").path
        guard FileManager.default.fileExists(atPath: source) else {
            Issue.record("missing \(source)")
            return nil
        }
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("pipebench-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let output = directory.appendingPathComponent(name).path
        let child = try ChildProcess.run(["cc", "-O2", "-o", output, source, "-lpthread"])
        guard child.status == 0 else {
            Issue.record("cc failed on \(source) (exit \(child.status)): \(child.standardError)")
            return nil
        }
        return output
    }

    /// Removes what `compile` made.
    static func discard(_ binary: String) {
        try? FileManager.default.removeItem(at: URL(fileURLWithPath: binary).deletingLastPathComponent())
    }

    static func parse(_ text: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { values[String(parts[0])] = String(parts[1]) }
        }
        return values
    }

    @Test(.enabled(if: hasCompiler, "no C compiler (cc)"))
    func lmbenchAndHarnessMeasureTheSameKernelPipe() throws {
        guard let binary = try Self.compile() else { return }
        defer { Self.discard(binary) }
        let scale = Int(ProcessInfo.processInfo.environment["PIPEBENCH_CROSSCHECK_SCALE"] ?? "") ?? 1
        let bytes = (16 << 20) * scale
        let roundTrips = 2_000 * scale
        let repetitions = 3
        let cpus = Topology.current().usableCPUs
        var placements: [(name: String, writer: Int, reader: Int)] = [("same-core", cpus[0], cpus[0])]
        if cpus.count >= 2 { placements.append(("cross-core", cpus[0], cpus[1])) }

        var lines: [String] = []
        for p in placements {
            var harnessBW: [Double] = []
            var harnessP50: [Double] = []
            var harnessMean: [Double] = []
            var c: [String: [String: String]] = [:]
            // Interleaved: C (processes), C (threads), harness, repeated.
            for _ in 0..<repetitions {
                for mode in ["processes", "threads"] {
                    var args = [binary, "-b", "\(bytes)", "-x", "65536", "-n", "\(roundTrips)", "-R", "1",
                                "-w", "\(p.writer)", "-r", "\(p.reader)"]
                    if mode == "threads" { args.append("-t") }
                    let out = try #require(runCommand(args), "lmbench-pipe failed: \(args)")
                    let values = Self.parse(out)
                    #expect(values["mode"] == mode)
                    let bw = try #require(values["bw_pipe_bytes_per_sec_median"].flatMap(Double.init))
                    let lat = try #require(values["lat_pipe_ns_median"].flatMap(Double.init))
                    #expect(bw > 0 && lat > 0)
                    c[mode, default: [:]]["bw", default: ""] += "\(bw) "
                    c[mode, default: [:]]["lat", default: ""] += "\(lat) "
                }
                let s = try StreamWorkload.run(StreamConfig(
                    transport: .linuxPipe, totalBytes: bytes, writeSize: 65536, readSize: 65536,
                    writerCPU: p.writer, readerCPU: p.reader))
                #expect(s.bytesReceived == bytes)
                harnessBW.append(s.bytesPerSecond)
                let l = try PingPongWorkload.run(PingPongConfig(
                    transport: .linuxPipe, messageSize: 1, iterations: roundTrips, warmupIterations: 100,
                    clientCPU: p.writer, serverCPU: p.reader)).result
                harnessP50.append(Double(l.latency.p50))
                harnessMean.append(l.latency.mean)
            }
            func median(_ text: String?) -> Double {
                Statistics.median((text ?? "").split(separator: " ").compactMap { Double($0) })
            }
            let gb = { (x: Double) in String(format: "%.2f GB/s", x / 1e9) }
            let us = { (x: Double) in String(format: "%.1f µs", x / 1e3) }
            lines.append("\(p.name) (writer CPU \(p.writer), reader CPU \(p.reader)), \(bytes >> 20) MiB, \(roundTrips) round trips, median of \(repetitions):")
            lines.append("  bw  64 KiB: lmbench processes \(gb(median(c["processes"]?["bw"])))  lmbench threads \(gb(median(c["threads"]?["bw"])))  harness linux-pipe \(gb(Statistics.median(harnessBW)))")
            lines.append("  lat 1 byte: lmbench processes \(us(median(c["processes"]?["lat"])))  lmbench threads \(us(median(c["threads"]?["lat"])))  harness linux-pipe mean \(us(Statistics.median(harnessMean))) p50 \(us(Statistics.median(harnessP50)))")
        }
        print("lmbench cross-check:\n" + lines.joined(separator: "\n"))
    }

    /// scripts/locked-ring.c (the seed's locking discipline alone, the README's ceiling for the
    /// buffered path) still builds and moves every byte intact: 100-byte writes split and wrap
    /// around its 16 KiB ring, with the engine-costs bookkeeping on. No timing is asserted.
    @Test(.enabled(if: hasCompiler, "no C compiler (cc)"),
          .enabled(if: Set(Topology.usableCPUList()).isSuperset(of: [0, 1]),
                   "locked-ring pins its threads to CPUs 0 and 1"))
    func lockedRingModelDeliversEveryByte() throws {
        guard let binary = try Self.compile("locked-ring") else { return }
        defer { Self.discard(binary) }
        let out = try #require(runCommand([binary, "100", "1000000", "1", "4", "1", "1"]),
                               "locked-ring failed (a byte arrived wrong, or it could not run)")
        let values = Self.parse(out)
        #expect(values["verified"] == "1")
        #expect(values["engine_costs"] == "1")
        #expect(values["total_B"] == "1000000")
        #expect((values["locked_ring_GBps_median"].flatMap(Double.init) ?? 0) > 0)
    }
}
