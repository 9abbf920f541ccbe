import PipeEngine
import PipeResults

extension ResultsTable {
    /// One row per repetition of a `Runner` report whose configurations were made from
    /// `points` (same order). Parameters that do not apply to a point are left empty.
    public init(report: RunReport, points: [SweepPoint], runID: String) {
        precondition(report.configurations.count == points.count, "one point per configuration")
        var rows: [[String]] = []
        let env = report.environment
        for (config, point) in zip(report.configurations, points) {
            for (k, rep) in config.repetitions.enumerated() {
                var r = ResultsRow()
                r.set("run_id", runID)
                r.set("label", config.name)
                r.int("repetition", k)
                r.int("order", rep.order)
                r.int("warmup_repetitions", report.warmupRepetitions)
                r.int("repetitions", report.repetitions)
                r.int("min_time_ns", rep.sizedTotal == nil ? nil : report.minTimeNs)
                r.number("precision_pct", report.precision.map { $0.fraction * 100 })
                r.set("precision_rounds", report.precision.map { $0.usualRoundsOnly ? "usual" : "all" })
                // parameters
                r.set("workload", point.workload.rawValue)
                r.set("transport", point.transport.rawValue)
                if point.applies(.writeSize) {
                    r.int("write_size_B", point.writeSize)
                    if point.transport != .memcpy { r.int("read_size_B", point.effectiveReadSize) }
                    r.int("total_B", rep.sizedTotal ?? point.effectiveTotal)
                }
                point.definition.recordParameters(point, into: &r)
                if point.applies(.kernelPipeSize) { r.int("kernel_pipe_size_asked_B", point.kernelPipeSize) }
                r.bool("verify", point.verify)
                if point.transport == .engine {
                    let e = point.engineConfiguration
                    for t in EngineTunable.all { r.set(t.column, ResultsSchema.engineCell(t, t.value(in: e))) }
                }
                // What was asked, with a preset resolved to the CPUs and nodes it chose.
                let placed = point.placementPreset == nil ? nil : point.placement
                r.set("placement", point.placementPreset?.rawValue)
                r.int("writer_cpu", placed?.writerCPU ?? point.writerCPU)
                r.int("reader_cpu", placed?.readerCPU ?? point.readerCPU)
                r.int("writer_node", placed?.writerNode ?? point.writerNode)
                r.int("reader_node", placed?.readerNode ?? point.readerNode)
                r.int("memory_node", placed?.memoryNode ?? point.memoryNode)
                // metrics
                r.set("metric", config.metric)
                r.number("value", rep.value)
                r.set("unit", config.unit)
                rep.result.record(into: &r)
                // probe
                if let b = report.coreProbeBefore {
                    r.set("probe_cpus", "\(b.cpuA);\(b.cpuB)")
                    r.number("probe_before_ns", b.medianNs)
                }
                r.number("probe_after_ns", report.coreProbeAfter?.medianNs)
                r.number("probe_ns", rep.probeNs)
                // environment
                if let env {
                    r.set("env_hostname", env.hostname)
                    r.set("env_kernel", env.kernel.release)
                    r.set("env_arch", env.kernel.machine)
                    r.set("env_cpu_model", env.cpuModel)
                    r.bool("env_hypervisor", env.hypervisor)
                    r.set("env_virtualization", env.virtualization)
                    r.bool("env_emulated", env.emulated)
                    r.int("env_online_cpus", env.onlineCPUs)
                    r.int("env_usable_cpus", env.usableCPUs)
                    r.int("env_numa_nodes", env.numa.available ? env.numa.nodes.count : 0)
                    r.set("env_thp", env.transparentHugePages)
                    r.set("env_clocksource", env.clocksource)
                    r.int("env_pipe_max_size_B", env.pipeMaxSize)
                    r.set("env_swift", env.swiftCompiler)
                    r.set("env_build", env.buildConfiguration)
                    r.set("env_version", env.projectVersion)
                    r.set("env_git_commit", env.gitCommit)
                    r.bool("env_git_dirty", env.gitDirty)
                    r.set("env_timestamp", env.timestamp)
                }
                rows.append(r.cells)
            }
        }
        self.init(rows: rows)
    }
}

extension ResultsRow {
    /// The `*_memory_node_seen` cells (the node holding most of each buffer's pages) and
    /// `memory_pages_misplaced`: the pages of every buffer in `checked` (by default these
    /// three; pairs and fan-in give all of theirs) bound to a node and found on another.
    public mutating func memory(writer: MemoryLocation?, reader: MemoryLocation?, arena: MemoryLocation?,
                                checked: [MemoryLocation?]? = nil) {
        int("writer_memory_node_seen", writer?.dominantNode)
        int("reader_memory_node_seen", reader?.dominantNode)
        int("arena_memory_node_seen", arena?.dominantNode)
        let bound = (checked ?? [writer, reader, arena]).compactMap { $0?.pagesOffRequestedNode }
        int("memory_pages_misplaced", bound.isEmpty ? nil : bound.reduce(0, +))
    }
}
