import Foundation
import Testing
@testable import PipeHarness

@Suite(.serialized) struct EnvironmentAndRunnerTests {
    @Test func environmentDescribesThisMachine() throws {
        let env = EnvironmentInfo.capture()
        #expect(env.kernel.sysname == "Linux")
        #expect(!env.kernel.release.isEmpty)
        #expect(env.onlineCPUs >= 1 && env.usableCPUs >= 1)
        #expect(env.projectVersion == pipeBenchVersion)
        #expect(!env.gitCommit.isEmpty)
        #expect(!env.hostname.isEmpty)
        #expect(env.buildConfiguration == "debug" || env.buildConfiguration == "release")
        if env.numa.available {
            #expect(!env.numa.nodes.isEmpty)
            let cpus = env.numa.nodes.flatMap(\.cpus)
            #expect(!cpus.isEmpty)
            #expect(env.numa.nodes.allSatisfy { $0.distances.count == env.numa.nodes.count })
        }
        // Round-trips through JSON, as it will be stored.
        let data = try JSONEncoder().encode(env)
        let back = try JSONDecoder().decode(EnvironmentInfo.self, from: data)
        #expect(back.kernel.release == env.kernel.release)
    }

    @Test func helpersParseSysfsFormats() {
        #expect(EnvironmentInfo.selectedMode("always [madvise] never\n") == "madvise")
        #expect(EnvironmentInfo.selectedMode("tsc\n") == "tsc")
        #expect(EnvironmentInfo.cpuinfoField("processor\t: 0\nmodel name\t: Some CPU @ 2GHz\n", "model name") == "Some CPU @ 2GHz")
        #expect(readTextFile("/proc/self/status")?.contains("Pid:") == true)
        #expect(readTextFile("/nonexistent/file") == nil)
    }

    @Test func coreProbeMeasuresRoundTrips() throws {
        let (a, b) = twoCPUs() ?? (0, 0)
        let r = try CoreProbe.measure(cpuA: a, cpuB: b, roundTrips: 2000, batchSize: 100)
        #expect(r.roundTrips == 2000)
        #expect(r.medianNs > 0 && r.minNs <= r.medianNs && r.medianNs <= r.maxNs)
        #expect(r.cpusSeen == [a, b])
    }

    @Test func runnerInterleavesAndSummarises() throws {
        let configs = [
            RunConfiguration(name: "pipe", workload: .stream(StreamConfig(transport: .linuxPipe, totalBytes: 256 * 1024, verify: true))),
            RunConfiguration(name: "ring", workload: .stream(StreamConfig(transport: .spscRing, totalBytes: 256 * 1024, verify: true))),
            RunConfiguration(name: "pingpong", workload: .pingpong(PingPongConfig(transport: .unixSocket, messageSize: 8, iterations: 100, warmupIterations: 10))),
        ]
        let runner = Runner(warmupRepetitions: 1, repetitions: 4, probe: Runner.Probe(cpuA: 0, cpuB: 0, roundTrips: 200), captureEnvironment: false)
        let report = try runner.run(configs)
        #expect(report.configurations.map(\.name) == ["pipe", "ring", "pingpong"])
        // A B C A B C …: configuration i's repetitions sit at positions i, i+3, i+6, i+9.
        for (i, c) in report.configurations.enumerated() {
            #expect(c.repetitions.map(\.order) == [i, i + 3, i + 6, i + 9])
            #expect(c.summary.count == 4)
            #expect(c.summary.min <= c.summary.median && c.summary.median <= c.summary.max)
            #expect(c.samples.allSatisfy { $0 > 0 })
        }
        #expect(report.configurations[0].unit == "B/s" && report.configurations[0].higherIsBetter)
        #expect(report.configurations[2].unit == "ns" && !report.configurations[2].higherIsBetter)
        #expect(report.comparisons.map(\.candidate) == ["ring", "pingpong"])
        #expect(report.comparisons.allSatisfy { $0.ratio != nil && $0.mannWhitney != nil })
        #expect(report.coreProbeBefore != nil && report.coreProbeAfter != nil)
        // Every repetition has the probes around it.
        #expect(report.configurations.allSatisfy { $0.repetitions.allSatisfy { ($0.probeNs ?? 0) > 0 } })
        _ = try JSONEncoder().encode(report)
    }

    @Test func runnerRefusesBadInput() {
        let runner = Runner(repetitions: 1, probe: Runner.Probe(cpuA: 0, cpuB: 0, roundTrips: 10), captureEnvironment: false)
        #expect(throws: HarnessError.self) { try runner.run([]) }
        let twice = RunConfiguration(name: "x", workload: .stream(StreamConfig(transport: .memcpy, totalBytes: 1024)))
        #expect(throws: HarnessError.self) { try runner.run([twice, twice]) }
    }
}
