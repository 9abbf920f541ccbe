import Foundation
import PipeEngine
import PipeHarness

/// The table printed after `run` and `sweep`: per workload, each configuration's median with
/// its 95% interval, and its ratio to the Linux pipe measured in the same run.
enum SummaryPrinter {
    static let engineColumns: Set<String> = Set(EngineTunable.all.map(\.column) + ["kva_tier_pct"])

    /// The linux-pipe group measured with the same workload parameters, if any.
    static func baseline(for g: ResultsSummary.Group, in groups: [ResultsSummary.Group], _ t: ResultsTable) -> ResultsSummary.Group? {
        let r = g.rows[0]
        guard t.value(r, "transport") != "linux-pipe" else { return nil }
        // mux: Linux has only poll, so an engine kqueue fan-in is compared with Linux's poll.
        var ignore = engineColumns.union(["transport", "read_size_B", "mux"])
        // A kernel pipe size is matched between kernel transports (vmsplice 1M against the
        // pipe at 1M); other transports take the pipe at the kernel's default size if measured.
        let kernel = ["linux-pipe", "linux-vmsplice"].contains(t.value(r, "transport"))
        if !kernel { ignore.insert("kernel_pipe_size_asked_B") }
        let key = ResultsSummary.parameterKey(t, r, ignoring: ignore)
        let readSize = t.value(r, "read_size_B")
        let candidates = groups.filter {
            t.value($0.rows[0], "transport") == "linux-pipe" && t.value($0.rows[0], "run_id") == t.value(r, "run_id")
                && ResultsSummary.parameterKey(t, $0.rows[0], ignoring: ignore) == key
        }.defaultKernelPipeFirst(t)
        if t.value(r, "transport") == "memcpy" {
            // One thread: compare with a linux-pipe that reads what it writes, wherever its reader ran.
            let looser = ignore.union(["reader_cpu", "reader_node"])
            let key = ResultsSummary.parameterKey(t, r, ignoring: looser)
            let pipes = groups.filter {
                t.value($0.rows[0], "transport") == "linux-pipe" && t.value($0.rows[0], "run_id") == t.value(r, "run_id")
                    && ResultsSummary.parameterKey(t, $0.rows[0], ignoring: looser) == key
            }.defaultKernelPipeFirst(t)
            return pipes.first { t.value($0.rows[0], "read_size_B") == t.value($0.rows[0], "write_size_B") } ?? pipes.first
        }
        return candidates.first { t.value($0.rows[0], "read_size_B") == readSize }
    }

    /// The ratio to the baseline measured in the same run: paired round by round (the median
    /// of per-round ratios, order-statistic interval) when both have the same rounds, else the
    /// ratio of medians with its bootstrap interval, marked "(unpaired)".
    /// With `onlyUsualPlacement`, only the rounds `drift` does not name as off the usual
    /// placement, and no unpaired fallback.
    static func ratioText(_ g: ResultsSummary.Group, _ base: ResultsSummary.Group?, _ column: String,
                          onlyUsualPlacement drift: ResultsSummary.PlacementDrift? = nil) -> String {
        guard let base else { return "" }
        if let r = ResultsSummary.pairedRatio(g, over: base, column, onlyUsualPlacementOf: drift) {
            return String(format: "%.2fx [%.2f, %.2f]", r.estimate, r.lower, r.upper) + (r.reachesConfidence ? "" : "*")
        }
        guard drift == nil else { return "" }
        guard let r = Statistics.bootstrapRatioOfMedians(baseline: base.samples(column), candidate: g.samples(column)) else { return "" }
        return String(format: "%.2fx [%.2f, %.2f] (unpaired)", r.estimate, r.lower, r.upper)
    }

    /// The "vs linux-pipe" cell, and when the run's placement drifted, the ratio over the
    /// usual placement's rounds beside it (the column `usualHeader` names).
    static func ratioCells(_ g: ResultsSummary.Group, _ base: ResultsSummary.Group?, _ column: String,
                           _ drift: ResultsSummary.PlacementDrift?) -> [String] {
        [ratioText(g, base, column)] + (drift.map { [ratioText(g, base, column, onlyUsualPlacement: $0)] } ?? [])
    }

    static func interval(_ xs: [Double], scale: Double, format: String) -> (String, String) {
        guard !xs.isEmpty else { return ("", "") }
        let m = String(format: format, Statistics.median(xs) / scale)
        var ci = ""
        if let i = Statistics.medianConfidenceInterval(xs) {
            ci = "[" + String(format: format, i.lower / scale) + ", " + String(format: format, i.upper / scale) + "]"
            if !i.reachesConfidence { ci += "*" }
        }
        return (m, ci)
    }

    static func render(_ t: ResultsTable) -> String {
        let groups = ResultsSummary.groups(t)
        var out: [String] = []
        var footnote = false
        // When the host moved the vCPUs during the run, ratios also over the usual placement's rounds.
        let drift = ResultsSummary.placementDrift(t)
        let usualHeader = drift.map { String(format: "rounds at ~%.0f ns", $0.usualNs) }
        let stream = groups.filter { t.value($0.rows[0], "workload") == WorkloadKind.stream.rawValue }
        if !stream.isEmpty {
            out.append("\nStream throughput (GB/s = 10^9 B/s, higher is better; ratio to linux-pipe = median of the per-round ratios, 95% CI)")
            var rows = [["configuration", "write", "GB/s", "95% CI", "min-max", "CPU ns/B", "vs linux-pipe"] + (usualHeader.map { [$0] } ?? [])]
            for g in stream {
                let xs = g.samples("throughput_GBps")
                let (m, ci) = interval(xs, scale: 1, format: "%.3f")
                if ci.hasSuffix("*") { footnote = true }
                let mm = xs.isEmpty ? "" : String(format: "%.2f-%.2f", xs.min()!, xs.max()!)
                let cpu = g.median("cpu_ns_per_B").map { String(format: "%.3f", $0) } ?? ""
                let w = Int(t.value(g.rows[0], "write_size_B")).map(SizeSpec.format) ?? ""
                rows.append([g.label, w, m, ci, mm, cpu] + ratioCells(g, baseline(for: g, in: groups, t), "throughput_GBps", drift))
                if rows.last!.contains(where: { $0.hasSuffix("*") }) { footnote = true }
            }
            out.append(TextTable.render(rows))
        }
        let pingpong = groups.filter { t.value($0.rows[0], "workload") == WorkloadKind.pingpong.rawValue }
        if !pingpong.isEmpty {
            out.append("\nPingpong round trip (µs, lower is better; ratio to linux-pipe = median of the per-round p50 ratios, 95% CI)")
            var rows = [["configuration", "message", "p50 µs", "95% CI", "p99 µs", "p99.9 µs", "vs linux-pipe"] + (usualHeader.map { [$0] } ?? [])]
            for g in pingpong {
                let (m, ci) = interval(g.samples("p50_ns"), scale: 1000, format: "%.2f")
                if ci.hasSuffix("*") { footnote = true }
                let p99 = g.median("p99_ns").map { String(format: "%.2f", $0 / 1000) } ?? ""
                let p999 = g.median("p999_ns").map { String(format: "%.2f", $0 / 1000) } ?? ""
                let msg = Int(t.value(g.rows[0], "message_size_B")).map(SizeSpec.format) ?? ""
                rows.append([g.label, msg, m, ci, p99, p999] + ratioCells(g, baseline(for: g, in: groups, t), "p50_ns", drift))
                if rows.last!.contains(where: { $0.hasSuffix("*") }) { footnote = true }
            }
            out.append(TextTable.render(rows))
        }
        for (workload, title, shape) in [
            (WorkloadKind.pairs, "Pairs: K writer/reader pairs at once (aggregate GB/s, higher is better; ratio to linux-pipe = median of the per-round ratios)", "pairs"),
            (WorkloadKind.fanin, "Fan-in: K writers, one reader multiplexing their pipes (aggregate GB/s, higher is better; ratio to linux-pipe poll = median of the per-round ratios)", "writers"),
        ] {
            let these = groups.filter { t.value($0.rows[0], "workload") == workload.rawValue }
            guard !these.isEmpty else { continue }
            out.append("\n" + title)
            var header = ["configuration", "write", "K", "GB/s", "95% CI", "slowest-fastest", "CPU ns/B"]
            if workload == .fanin { header += ["mux", "KiB/call"] }
            header.append("vs linux-pipe")
            if let usualHeader { header.append(usualHeader) }
            var rows = [header]
            for g in these {
                let r0 = g.rows[0]
                let (m, ci) = interval(g.samples("throughput_GBps"), scale: 1, format: "%.3f")
                if ci.hasSuffix("*") { footnote = true }
                let spread = [g.median("stream_min_GBps"), g.median("stream_max_GBps")].compactMap { $0 }
                let mm = spread.count == 2 ? String(format: "%.2f-%.2f", spread[0], spread[1]) : ""
                let cpu = g.median("cpu_ns_per_B").map { String(format: "%.3f", $0) } ?? ""
                let w = Int(t.value(r0, "write_size_B")).map(SizeSpec.format) ?? ""
                var row = [g.label, w, t.value(r0, shape), m, ci, mm, cpu]
                if workload == .fanin {
                    // Bytes delivered per poll/kevent call: how much each wake-up carried.
                    let perCall = zip(g.samples("bytes_B"), g.samples("mux_calls")).map { $1 > 0 ? $0 / $1 / 1024 : 0 }
                    row += [t.value(r0, "mux"), perCall.isEmpty ? "" : String(format: "%.1f", Statistics.median(perCall))]
                }
                row += ratioCells(g, baseline(for: g, in: groups, t), "throughput_GBps", drift)
                if row.contains(where: { $0.hasSuffix("*") }) { footnote = true }
                rows.append(row)
            }
            out.append(TextTable.render(rows))
        }
        let kva = groups.filter { t.value($0.rows[0], "workload") == WorkloadKind.kvaPressure.rawValue }
        if !kva.isEmpty {
            out.append("\nKVA pressure: engine stream after ballast pipes fill pipekva to a tier of maxpipekva (GB/s, higher is better)")
            var rows = [["configuration", "tier %", "band", "pipekva %", "GB/s", "95% CI", "buffer start-end", "allocfail"]]
            for g in kva {
                let r0 = g.rows[0]
                let (m, ci) = interval(g.samples("throughput_GBps"), scale: 1, format: "%.3f")
                if ci.hasSuffix("*") { footnote = true }
                let pct = g.median("kva_pipekva_before_pct").map { String(format: "%.1f", $0) } ?? ""
                let start = Int(t.value(r0, "kva_buffer_size_start_B")).map(SizeSpec.format) ?? "-"
                let end = Int(t.value(r0, "kva_buffer_size_end_B")).map(SizeSpec.format) ?? "-"
                rows.append([g.label, t.value(r0, "kva_tier_pct"), t.value(r0, "kva_band"), pct, m, ci, "\(start)-\(end)", t.value(r0, "kva_pipeallocfail")])
            }
            out.append(TextTable.render(rows, leftAligned: [0, 2]))
        }
        if let r = t.rows.indices.first {
            let before = Double(t.value(r, "probe_before_ns")).map { String(format: "%.0f", $0) } ?? "?"
            let after = Double(t.value(r, "probe_after_ns")).map { String(format: "%.0f", $0) } ?? "?"
            out.append("\nRepetitions: \(t.value(r, "repetitions")) (+\(t.value(r, "warmup_repetitions")) warm-up), interleaved. Core-to-core probe (CPUs \(t.value(r, "probe_cpus").replacingOccurrences(of: ";", with: ","))): \(before) ns before, \(after) ns after.")
            let placements = Set(t.rows.indices.map { i in
                let pairs = t.value(i, "pair_cpus")
                if !pairs.isEmpty { return "pairs \(pairs)" }
                return "\(t.value(i, "writer_cpu").isEmpty ? "any" : t.value(i, "writer_cpu"))/\(t.value(i, "reader_cpu").isEmpty ? "any" : t.value(i, "reader_cpu"))"
            }).sorted()
            out.append("Writer/reader CPUs (pingpong: client/server): \(placements.joined(separator: ", ")); memcpy uses the writer's.")
            if let drift {
                let f = ResultsSummary.placementDriftFactor
                out.append(String(format: "Placement changed during the run: the probes between measurements read %.0f-%.0f ns, usually %.0f; ",
                                  drift.lowestNs, drift.highestNs, drift.usualNs)
                    + "\(drift.offRounds.count) of \(drift.rounds) rounds (repetition \(drift.offRounds.map(String.init).joined(separator: ","))) "
                    + String(format: "had a repetition outside %.0f-%.0f ns. ", drift.usualNs / f, drift.usualNs * f)
                    + "Ratios pair rounds, so each compares like with like; medians and intervals mix the placements "
                    + "(column probe_ns). The last column is the ratio over the usual placement's rounds alone.")
            }
            if t.value(r, "env_build") == "debug" { out.append("Note: a debug build; measure with `swift build -c release`.") }
        }
        if footnote { out.append("* fewer than 6 repetitions: the interval is min-max and covers the median with less than 95%.") }
        return out.joined(separator: "\n")
    }
}

extension Array where Element == ResultsSummary.Group {
    /// Groups at the kernel's default pipe size first, otherwise in order.
    func defaultKernelPipeFirst(_ t: ResultsTable) -> [Element] {
        let isDefault = { (g: Element) in t.value(g.rows[0], "kernel_pipe_size_asked_B").isEmpty }
        return filter(isDefault) + filter { !isDefault($0) }
    }
}
