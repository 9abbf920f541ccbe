import PipeEngine

extension ResultsTable {
    /// One row per repetition of a `Runner` report whose configurations were made from
    /// `points` (same order). Parameters that do not apply to a point are left empty.
    public init(report: RunReport, points: [SweepPoint], runID: String) {
        precondition(report.configurations.count == points.count, "one point per configuration")
        var rows: [[String]] = []
        let env = report.environment
        for (config, point) in zip(report.configurations, points) {
            for (k, rep) in config.repetitions.enumerated() {
                var r = ResultsTable.emptyRow()
                func set(_ c: String, _ v: String?) { ResultsTable.set(&r, c, v) }
                func int(_ c: String, _ v: (some BinaryInteger)?) { set(c, v.map { String($0) }) }
                func num(_ c: String, _ v: Double?) { set(c, v.map(ResultsTable.formatNumber)) }
                func bool(_ c: String, _ v: Bool?) { set(c, v.map { $0 ? "true" : "false" }) }
                func cpus(_ c: String, _ v: [Int]?) { set(c, v.map { $0.map(String.init).joined(separator: ";") }) }
                set("run_id", runID)
                set("label", config.name)
                int("repetition", k)
                int("order", rep.order)
                int("warmup_repetitions", report.warmupRepetitions)
                int("repetitions", report.repetitions)
                // parameters
                set("workload", point.workload.rawValue)
                set("transport", point.transport.rawValue)
                if point.applies(.writeSize) {
                    int("write_size_B", point.writeSize)
                    if point.transport != .memcpy { int("read_size_B", point.effectiveReadSize) }
                    int("total_B", point.effectiveTotal)
                }
                if point.applies(.messageSize) {
                    int("message_size_B", point.messageSize)
                    int("iterations", point.iterations)
                    int("warmup_iterations", point.effectiveWarmupIterations)
                    num("rate_per_s", point.rate)
                }
                if point.applies(.pairs) {
                    int("pairs", point.pairs)
                    set("pair_cpus", point.pairCPUs?.description)
                }
                if point.applies(.writers) {
                    int("writers", point.writers)
                    set("mux", point.mux.rawValue)
                }
                if point.applies(.kernelPipeSize) { int("kernel_pipe_size_asked_B", point.kernelPipeSize) }
                bool("verify", point.verify)
                if point.transport == .engine {
                    let e = point.engineConfiguration
                    for t in EngineTunable.all { set(t.column, ResultsSchema.engineCell(t, t.value(in: e))) }
                    int("kva_tier_pct", point.kvaTier)
                }
                int("writer_cpu", point.writerCPU)
                int("reader_cpu", point.readerCPU)
                int("writer_node", point.writerNode)
                int("reader_node", point.readerNode)
                int("memory_node", point.memoryNode)
                // metrics
                set("metric", config.metric)
                num("value", rep.value)
                set("unit", config.unit)
                if let s = rep.stream {
                    num("throughput_GBps", s.bytesPerSecond / 1e9)
                    int("wall_ns", s.wallNs)
                    int("bytes_B", s.bytesReceived)
                    int("writer_cpu_ns", s.writerCPUNs)
                    int("reader_cpu_ns", s.readerCPUNs)
                    num("cpu_ns_per_B", s.bytesReceived > 0 ? Double(s.writerCPUNs + s.readerCPUNs) / Double(s.bytesReceived) : nil)
                    int("write_calls", s.writeCalls)
                    int("read_calls", s.readCalls)
                    cpus("writer_cpus_seen", s.writerCPUsSeen)
                    cpus("reader_cpus_seen", s.readerCPUsSeen)
                    int("kernel_pipe_size_B", s.kernelPipeSize)
                    bool("integrity_ok", s.verified ? s.integrityOK : nil)
                }
                if let p = rep.pingpong {
                    int("wall_ns", p.wallNs)
                    int("writer_cpu_ns", p.clientCPUNs)
                    int("reader_cpu_ns", p.serverCPUNs)
                    cpus("writer_cpus_seen", p.clientCPUsSeen)
                    cpus("reader_cpus_seen", p.serverCPUsSeen)
                    bool("integrity_ok", p.verified ? p.integrityOK : nil)
                    let l = p.latency
                    int("rtt_count", l.count)
                    int("rtt_min_ns", l.min)
                    int("p50_ns", l.p50)
                    int("p90_ns", l.p90)
                    int("p99_ns", l.p99)
                    int("p999_ns", l.p999)
                    int("p9999_ns", l.p9999)
                    int("rtt_max_ns", l.max)
                    num("rtt_mean_ns", l.mean)
                    int("late_sends", p.lateSends)
                }
                func streams(_ bps: [Double]) {
                    num("stream_min_GBps", bps.min().map { $0 / 1e9 })
                    num("stream_max_GBps", bps.max().map { $0 / 1e9 })
                    set("streams_GBps", bps.map { ResultsTable.formatNumber($0 / 1e9) }.joined(separator: ";"))
                }
                if let p = rep.pairs {
                    num("throughput_GBps", p.aggregateBytesPerSecond / 1e9)
                    int("wall_ns", p.wallNs)
                    int("bytes_B", p.totalBytes)
                    int("writer_cpu_ns", p.perPair.reduce(Int64(0)) { $0 + $1.writerCPUNs })
                    int("reader_cpu_ns", p.perPair.reduce(Int64(0)) { $0 + $1.readerCPUNs })
                    num("cpu_ns_per_B", p.cpuNsPerByte)
                    int("write_calls", p.perPair.reduce(0) { $0 + $1.writeCalls })
                    int("read_calls", p.perPair.reduce(0) { $0 + $1.readCalls })
                    streams(p.perPair.map(\.bytesPerSecond))
                    cpus("writer_cpus_seen", p.perPair.flatMap(\.writerCPUsSeen))
                    cpus("reader_cpus_seen", p.perPair.flatMap(\.readerCPUsSeen))
                    int("kernel_pipe_size_B", p.perPair.first?.kernelPipeSize)
                    bool("integrity_ok", p.verified ? p.integrityOK : nil)
                }
                if let f = rep.fanin {
                    num("throughput_GBps", f.aggregateBytesPerSecond / 1e9)
                    int("wall_ns", f.wallNs)
                    int("bytes_B", f.bytesReceived)
                    int("writer_cpu_ns", f.writerCPUNs.reduce(0, +))
                    int("reader_cpu_ns", f.readerCPUNs)
                    num("cpu_ns_per_B", f.cpuNsPerByte)
                    int("write_calls", f.writeCalls)
                    int("read_calls", f.readCalls)
                    streams(f.perWriterBytesPerSecond)
                    int("mux_calls", f.muxCalls)
                    int("ready_events", f.readyEvents)
                    int("empty_reads", f.emptyReads)
                    cpus("writer_cpus_seen", f.writerCPUsSeen.flatMap { $0 })
                    cpus("reader_cpus_seen", f.readerCPUsSeen)
                    bool("integrity_ok", f.verified ? f.integrityOK : nil)
                }
                /// The node all pairs' buffers of one kind agree on (nil when they differ).
                func agreed(_ xs: [MemoryLocation?]) -> MemoryLocation? {
                    let nodes = Set(xs.map { $0?.dominantNode })
                    return nodes.count == 1 ? xs.first ?? nil : nil
                }
                let memory: [MemoryLocation?] = rep.stream.map { [$0.writerMemory, $0.readerMemory, $0.arenaMemory] }
                    ?? rep.pingpong.map { [$0.clientMemory, $0.serverMemory, $0.arenaMemory] }
                    ?? rep.pairs.map { p in [agreed(p.perPair.map(\.writerMemory)), agreed(p.perPair.map(\.readerMemory)),
                                            p.arenaMemory ?? agreed(p.perPair.map(\.arenaMemory))] }
                    ?? rep.fanin.map { [$0.writerMemory, $0.readerMemory, $0.arenaMemory] } ?? [nil, nil, nil]
                int("writer_memory_node_seen", memory[0]?.dominantNode)
                int("reader_memory_node_seen", memory[1]?.dominantNode)
                int("arena_memory_node_seen", memory[2]?.dominantNode)
                if let k = rep.kvaPressure {
                    set("kva_band", k.band.rawValue)
                    int("kva_ballast_pipes", k.ballastPipes)
                    num("kva_pipekva_before_pct", k.countersBefore.pipekvaPercent)
                    int("kva_buffer_size_start_B", k.bufferSizeAtCreation)
                    cpus("kva_buffer_sizes_seen", k.bufferSizesSeen)
                    int("kva_buffer_size_end_B", k.bufferSizeAtEnd)
                    int("kva_pipefragretry", k.countersAfter.pipefragretry)
                    int("kva_pipeallocfail", k.countersAfter.pipeallocfail)
                    int("kva_piperesizefail", k.countersAfter.piperesizefail)
                    int("kva_resizes", k.countersAfter.resizes - k.countersBefore.resizes)
                    set("kva_workload_error", k.workloadError)
                    if k.stream == nil { num("throughput_GBps", 0) }
                }
                // probe
                if let b = report.coreProbeBefore {
                    set("probe_cpus", "\(b.cpuA);\(b.cpuB)")
                    num("probe_before_ns", b.medianNs)
                }
                num("probe_after_ns", report.coreProbeAfter?.medianNs)
                num("probe_ns", rep.probeNs)
                // environment
                if let env {
                    set("env_hostname", env.hostname)
                    set("env_kernel", env.kernel.release)
                    set("env_arch", env.kernel.machine)
                    set("env_cpu_model", env.cpuModel)
                    bool("env_hypervisor", env.hypervisor)
                    int("env_online_cpus", env.onlineCPUs)
                    int("env_usable_cpus", env.usableCPUs)
                    int("env_numa_nodes", env.numa.available ? env.numa.nodes.count : 0)
                    set("env_thp", env.transparentHugePages)
                    set("env_clocksource", env.clocksource)
                    int("env_pipe_max_size_B", env.pipeMaxSize)
                    set("env_swift", env.swiftCompiler)
                    set("env_build", env.buildConfiguration)
                    set("env_version", env.projectVersion)
                    set("env_git_commit", env.gitCommit)
                    bool("env_git_dirty", env.gitDirty)
                    set("env_timestamp", env.timestamp)
                }
                rows.append(r)
            }
        }
        self.init(rows: rows)
    }

    /// Numbers as the shortest text that reads back to the same Double.
    public static func formatNumber(_ x: Double) -> String {
        guard x.isFinite else { return "" }
        return x.description
    }
}
