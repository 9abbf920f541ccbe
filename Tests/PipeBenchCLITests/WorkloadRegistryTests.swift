import Foundation
import PipeEngine
import Testing
@testable import PipeHarness
@testable import PipeResults

/// Every workload is declared once, in its folder, and listed once in
/// `WorkloadKind.registered`; these check that each one, and each of its own parameters,
/// reaches every place that lists them: the names the CLI and config files accept, the sweep
/// axes, the command-line help, the results schema, and a point that builds its workload.
@Suite(.serialized) struct WorkloadRegistryTests {
    @Test func everyWorkloadIsKnownByItsName() {
        #expect(WorkloadKind.registered.count == 8)
        #expect(Set(WorkloadKind.allCases).count == WorkloadKind.registered.count)
        for w in WorkloadKind.registered {
            #expect(WorkloadKind(rawValue: w.kind.rawValue) == w.kind)
            #expect(ObjectIdentifier(w.kind.definition) == ObjectIdentifier(w))
            #expect(knownWorkloads.contains(w.kind.rawValue))
            #expect(WorkloadKind.listed().contains("\(w.kind.rawValue) (\(w.purpose))"))
        }
        #expect(WorkloadKind(rawValue: "nap") == nil)
    }

    /// A parameter is declared once and may be listed by several workloads (contend counts
    /// its writers with fanin's --writers): it is one sweep axis, and applies to exactly the
    /// workloads that list it.
    @Test func everyParameterIsASweepAxisOfTheWorkloadsThatListIt() {
        let listed = WorkloadKind.registered.flatMap { w in w.parameters.map { (w.kind, $0) } }
        for (kind, p) in listed {
            #expect(SweepAxis(rawValue: p.name) == .parameter(p), "\(p.name)")
            #expect(SweepAxis.allCases.filter { $0 == .parameter(p) }.count == 1, "\(p.name) is one axis")
            #expect(p.users.contains(kind))
            #expect(p.owner == p.users[0])
            var point = SweepPoint()
            for other in WorkloadKind.allCases {
                point.workload = other
                #expect(point.applies(.parameter(p)) == p.users.contains(other), "\(p.name) and \(other)")
            }
        }
        // One declaration per name: the same kind and default wherever it is listed.
        for (_, group) in Dictionary(grouping: listed.map(\.1), by: \.name) {
            #expect(Set(group.map { "\($0.kind)|\($0.defaultValue ?? "")|\($0.group)" }).count == 1)
        }
        #expect(FanInWorkload.writers.users == [.fanin, .contend])
        #expect(ContendWorkload.threadCPUs.users == [.contend, .jobserver])
        // No workload parameter shadows a common axis or an engine tunable.
        #expect(Set(SweepAxis.allCases.map(\.rawValue)).count == SweepAxis.allCases.count)
    }

    @Test func everyParameterIsInTheCommandLineHelp() throws {
        for command in ["run", "sweep"] {
            let help = try pipebench([command, "--help"])
            #expect(help.status == 0)
            // The --workload help names every workload with its purpose (the help wraps lines).
            let words = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(words.contains(WorkloadKind.listed()), "\(command) --help lacks the workloads")
            for p in WorkloadKind.allParameters {
                #expect(help.stdout.contains("--\(p.name) <"), "\(command) --help lacks --\(p.name)")
            }
        }
    }

    /// Each workload's own parameters are recorded in parameter columns of the schema, and a
    /// point of each workload, with its defaults, builds a workload of that kind and metric.
    @Test func everyWorkloadRecordsItsParametersAndBuilds() throws {
        for w in WorkloadKind.registered {
            var point = SweepPoint()
            point.workload = w.kind
            // A replay needs a trace: one pipe, one write, one read.
            if w.kind == .replay { point[ReplayWorkload.trace] = try minimalTraceFile() }
            point = point.normalized()
            var row = ResultsRow()
            w.recordParameters(point, into: &row)
            let filled = ResultsSchema.columns.filter { $0.name != "schema" && !row.isEmpty($0.name) }
            #expect(filled.allSatisfy { $0.group == .parameter }, "\(w.kind): \(filled.map(\.name))")
            // The socket type is recorded for unix-socket points only (the default point is the engine's).
            let recorded = w.parameters.filter { $0.defaultValue != nil && $0 != ContendWorkload.socket }
            #expect(recorded.count <= filled.count, "\(w.kind)")
            let built = try point.makeWorkload()
            #expect(built.kind == w.kind && built.metric == w.metric)
        }
    }
}

/// A trace file of one pipe with one 100-byte write and its read, in a fresh directory.
func minimalTraceFile() throws -> String {
    let header = PipeTrace.Header(
        command: ["true"], recorded: "2026-12-04T00:00:00Z", exitStatus: 0, tracer: "strace", tools: [],
        machine: PipeTrace.Machine(hostname: "h", kernel: "k", arch: "x86_64", cpuModel: nil, onlineCPUs: 1), pipebench: "test")
    let trace = PipeTrace(header: header, pipes: [PipeTrace.Pipe(id: 0, inode: 1, creator: 1, createdNs: 0)], calls: [
        PipeTrace.Call(pipe: 0, pid: 2, end: .write, call: "write", asked: 100, returned: 100, startNs: 0, durationNs: 1, gapNs: nil),
        PipeTrace.Call(pipe: 0, pid: 3, end: .read, call: "read", asked: 4096, returned: 100, startNs: 1, durationNs: 1, gapNs: nil),
    ])
    let path = makeTempDir() + "/minimal.ndjson"
    try trace.write(to: path)
    return path
}
