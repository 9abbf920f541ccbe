import Foundation
import PipeEngine
import PipeHarness
import PipeResults

/// The table printed after `run` and `sweep`: per workload, each configuration's median with
/// its 95% interval, and its ratio to the Linux pipe measured in the same run (each
/// workload's table is its definition's `summary`), then how the run was placed.
enum SummaryPrinter {
    /// `stop`: why a run with a precision target stopped (known only right after it ran).
    static func render(_ t: ResultsTable, stop: String? = nil) -> String {
        var context = SummaryContext(t)
        var out: [String] = []
        for workload in WorkloadKind.registered {
            let groups = context.groups(of: workload.kind)
            guard !groups.isEmpty, let table = workload.summary(groups, &context) else { continue }
            out.append("\n" + table)
        }
        let why = ResultsSummary.groups(t).compactMap(ResultsExplain.whyLine)
        if !why.isEmpty {
            out.append("\nWhy, per configuration (medians; `pipebench explain FILE` lists every count):\n"
                       + why.map { "  " + $0 }.joined(separator: "\n"))
        }
        let drift = context.drift
        let footnote = context.footnote
        if let r = t.rows.indices.first {
            let before = Double(t.value(r, "probe_before_ns")).map { String(format: "%.0f", $0) } ?? "?"
            let after = Double(t.value(r, "probe_after_ns")).map { String(format: "%.0f", $0) } ?? "?"
            out.append("\nRepetitions: \(t.value(r, "repetitions")) (+\(t.value(r, "warmup_repetitions")) warm-up), interleaved. Core-to-core probe (CPUs \(t.value(r, "probe_cpus").replacingOccurrences(of: ";", with: ","))): \(before) ns before, \(after) ns after.")
            if let minTime = Int64(t.value(r, "min_time_ns")) {
                out.append("Repetitions sized to last at least \(DurationSpec.format(minTime)) (--total auto, calibrated in the warm-up); total_B holds each repetition's bytes.")
            }
            if let line = precisionLine(t, stop: stop) { out.append(line) }
            let placements = Set(t.rows.indices.map { i in
                let pairs = t.value(i, "pair_cpus")
                if !pairs.isEmpty { return "pairs \(pairs)" }
                let cpus = "\(t.value(i, "writer_cpu").isEmpty ? "any" : t.value(i, "writer_cpu"))/\(t.value(i, "reader_cpu").isEmpty ? "any" : t.value(i, "reader_cpu"))"
                let preset = t.value(i, "placement")
                return preset.isEmpty ? cpus : "\(cpus) (\(preset))"
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
            if t.value(r, "env_emulated") == "true" {
                out.append("Note: the CPU is emulated (\(t.value(r, "env_virtualization"))): this run shows behaviour and placement; its timings are not performance.")
            }
        }
        out += ResultsSummary.placementWarnings(t).map { "Warning: \($0)" }
        if footnote { out.append("* fewer than 6 repetitions: the interval is min-max and covers the median with less than 95%.") }
        return out.joined(separator: "\n")
    }

    /// Whether each configuration met the run's precision target (`precision_pct`), judged as
    /// the run judged it: over all rounds, or over the usual placement's.
    static func precisionLine(_ t: ResultsTable, stop: String?) -> String? {
        guard let r = t.rows.indices.first, let pct = Double(t.value(r, "precision_pct")) else { return nil }
        let target = PrecisionTarget(fraction: pct / 100, usualRoundsOnly: t.value(r, "precision_rounds") == "usual")
        let drift = ResultsSummary.placementDrift(t)
        var missed: [String] = []
        let groups = ResultsSummary.groups(t)
        for g in groups {
            let rounds = g.rows.filter { row in
                !(target.usualRoundsOnly && drift?.isOff(runID: g.runID, round: Int(t.value(row, "repetition")) ?? -1) == true)
            }
            let samples = rounds.compactMap { Double(t.value($0, "value")) }
            if !target.isMet(samples) {
                let reach = target.relativeHalfWidth(samples).map { "±" + String(format: "%.1f", $0 * 100) + "%" } ?? "fewer than 6 rounds"
                missed.append("\(g.label) (\(reach))")
            }
        }
        let over = target.usualRoundsOnly ? "over the usual placement's rounds" : "over all rounds"
        let rounds = t.value(r, "repetitions")
        if missed.isEmpty { return "Precision \(target.text) \(over): every configuration reached it in \(rounds) rounds." }
        return "Precision \(target.text) \(over): \(missed.count) of \(groups.count) configurations did not reach it in \(rounds) rounds"
            + (stop.map { " (\($0))" } ?? "") + ": \(missed.joined(separator: ", "))."
    }
}
