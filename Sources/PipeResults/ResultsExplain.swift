import Foundation
import PipeEngine

/// Why a configuration measured what it did: the engine's events (`ev_*`) and each side's
/// scheduling (context switches, user and system time), as rates per unit of work — per MiB
/// moved (stream, pairs, fan-in, kva-pressure) or per round trip (pingpong) — so that runs of
/// different sizes compare, and the engine and the kernel's pipes read in the same units.
public enum ResultsExplain {
    /// The unit of work of a row: its name and how many of it the row did.
    public static func unit(_ t: ResultsTable, _ row: Int) -> (name: String, amount: Double)? {
        if t.value(row, "workload") == "pingpong" {
            return Double(t.value(row, "rtt_count")).flatMap { $0 > 0 ? ("round trip", $0) : nil }
        }
        return Double(t.value(row, "bytes_B")).flatMap { $0 > 0 ? ("MiB", $0 / 1_048_576) : nil }
    }

    /// The median over a group's rows of `value(row)`, skipping rows where it is nil.
    static func median(_ g: ResultsSummary.Group, _ value: (Int) -> Double?) -> Double? {
        let xs = g.rows.compactMap(value).sorted()
        guard !xs.isEmpty else { return nil }
        return xs.count % 2 == 1 ? xs[xs.count / 2] : (xs[xs.count / 2 - 1] + xs[xs.count / 2]) / 2
    }

    /// The median rate of `columns` (added up) per unit of work.
    static func rate(_ g: ResultsSummary.Group, _ columns: [String]) -> Double? {
        let t = g.table
        return median(g) { r in
            guard let u = unit(t, r) else { return nil }
            var sum = 0.0
            for c in columns {
                guard let v = Double(t.value(r, c)) else { return nil }
                sum += v
            }
            return sum / u.amount
        }
    }

    /// The median of `numerator` / `denominator` (both summed over their columns), per row.
    static func ratio(_ g: ResultsSummary.Group, _ numerator: [String], _ denominator: [String]) -> Double? {
        let t = g.table
        return median(g) { r in
            let n = numerator.compactMap { Double(t.value(r, $0)) }.reduce(0, +)
            let d = denominator.compactMap { Double(t.value(r, $0)) }.reduce(0, +)
            return d > 0 ? n / d : nil
        }
    }

    static func ev(_ e: PipeEvent) -> String { ResultsSchema.eventColumn(e) }

    static let sleepColumns = PipeEvent.allCases.filter { $0.name.hasPrefix("sleep_") && $0 != .sleepSpun && $0 != .sleepParked }.map(ev)
    static let switchColumns = ["writer_vcsw", "writer_ivcsw", "reader_vcsw", "reader_ivcsw"]

    /// Spells a rate with enough digits to read: 16, 31.5, 0.41, 0.0031; whole numbers whole.
    static func format(_ x: Double) -> String {
        if x == x.rounded() && abs(x) < 1e15 { return String(Int64(x)) }
        if abs(x) >= 100 { return String(format: "%.0f", x) }
        if abs(x) >= 10 { return String(format: "%.1f", x) }
        if abs(x) >= 0.1 { return String(format: "%.2f", x) }
        return String(format: "%.2g", x)
    }

    /// The few rates that decide a configuration, on one line: for the engine, the direct path's
    /// chunks and parks, sleeps and how many parked, lock contention; for every transport the
    /// context switches and system time. Nil for a group without the columns (older files).
    public static func whyLine(_ g: ResultsSummary.Group) -> String? {
        let t = g.table
        guard let first = g.rows.first, let unit = unit(t, first)?.name,
              rate(g, switchColumns) != nil else { return nil }
        var parts: [String] = []
        if t.value(first, "transport") == "engine", rate(g, [ev(.directChunk)]) != nil {
            if let chunks = rate(g, [ev(.directChunk)]), chunks > 0 {
                let parks = ratio(g, [ev(.sleepParked)], [ev(.directChunk)]) ?? 0
                let clones = rate(g, [ev(.clone)]) ?? 0
                parts.append("\(format(chunks)) chunks/\(unit), \(format(parks)) parks/chunk, \(format(clones)) clones/\(unit)")
            }
            let sleeps = rate(g, sleepColumns) ?? 0
            let parked = ratio(g, [ev(.sleepParked)], sleepColumns)
            parts.append("\(format(sleeps)) sleeps/\(unit)" + (parked.map { sleeps > 0 ? " (\(Int(($0 * 100).rounded()))% parked)" : "" } ?? ""))
            parts.append("\(format(rate(g, [ev(.mutexContended)]) ?? 0)) contended locks/\(unit)")
            if let resizes = rate(g, [ev(.resizeGrow), ev(.resizeShrink)]), resizes > 0 {
                parts.append("\(format(resizes)) resizes/\(unit)")
            }
        }
        let switches = rate(g, switchColumns) ?? 0
        var sched = "\(format(switches)) context switches/\(unit)"
        if let sys = rate(g, ["writer_sys_ns", "reader_sys_ns"]) {
            sched += ", \(format(sys / 1000)) µs system time/\(unit)"
        }
        parts.append(sched)
        return "\(g.label): " + parts.joined(separator: "; ")
    }

    /// Every event and scheduling count of one configuration, one line each, by repetition,
    /// with the median and the median per unit of work. Events that are 0 in every repetition
    /// are listed together at the end.
    public static func table(_ g: ResultsSummary.Group) -> String {
        let t = g.table
        let unitName = g.rows.first.flatMap { unit(t, $0)?.name } ?? "unit"
        let reps = g.rows.map { t.value($0, "repetition") }
        var rows = [["count"] + reps.map { "rep \($0)" } + ["median", "per \(unitName)"]]
        var zero: [String] = []
        let names = ResultsSchema.schedulingColumns.map(\.name) + (t.value(g.rows[0], "transport") == "engine" ? PipeEvent.allCases.map(ev) : [])
        for c in names {
            let values = g.rows.map { Double(t.value($0, c)) }
            guard values.contains(where: { $0 != nil }) else { continue }
            if c.hasPrefix("ev_") && values.allSatisfy({ ($0 ?? 0) == 0 }) { zero.append(String(c.dropFirst(3))); continue }
            let m = median(g) { Double(t.value($0, c)) }
            let per = rate(g, [c])
            rows.append([c] + values.map { $0.map { String(Int64($0)) } ?? "" } + [m.map(format) ?? "", per.map(format) ?? ""])
        }
        var out = TextTable.render(rows)
        if !zero.isEmpty { out += "\nzero in every repetition: " + zero.joined(separator: ", ") }
        return out
    }
}
