import Foundation
import PipeEngine
import PipeResults

/// What a workload's summary table is made with: the whole table's groups (to find the
/// linux-pipe point measured beside each one), the placement drift of the run, and the cells
/// every table shares (median with interval, ratio to linux-pipe).
public struct SummaryContext {
    public let table: ResultsTable
    public let groups: [ResultsSummary.Group]
    /// When the host moved the vCPUs during the run: the ratios are also given over the usual
    /// placement's rounds, in a column of their own (`usualHeader`).
    public let drift: ResultsSummary.PlacementDrift?
    public let usualHeader: String?
    /// Whether some interval printed is min-max (fewer than 6 repetitions).
    public private(set) var footnote = false

    public init(_ table: ResultsTable) {
        self.table = table
        groups = ResultsSummary.groups(table)
        drift = ResultsSummary.placementDrift(table)
        usualHeader = drift.map { String(format: "rounds at ~%.0f ns", $0.usualNs) }
    }

    /// The groups of one workload, in table order.
    public func groups(of workload: WorkloadKind) -> [ResultsSummary.Group] {
        groups.filter { table.value($0.rows[0], "workload") == workload.rawValue }
    }

    /// A cell of the group's first repetition.
    public func value(_ g: ResultsSummary.Group, _ column: String) -> String { table.value(g.rows[0], column) }

    /// A size cell as `SizeSpec` spells it ("64K"), "" when empty.
    public func size(_ g: ResultsSummary.Group, _ column: String) -> String {
        Int(value(g, column)).map(SizeSpec.format) ?? ""
    }

    /// A row of a table: noted for the footnote when one of its intervals is min-max.
    public mutating func row(_ cells: [String]) -> [String] {
        if cells.contains(where: { $0.hasSuffix("*") }) { footnote = true }
        return cells
    }

    /// The median and its interval (`[lower, upper]`, `*` when it is min-max), scaled.
    public func interval(_ xs: [Double], scale: Double = 1, format: String) -> (String, String) {
        guard !xs.isEmpty else { return ("", "") }
        let m = String(format: format, Statistics.median(xs) / scale)
        var ci = ""
        if let i = Statistics.medianConfidenceInterval(xs) {
            ci = "[" + String(format: format, i.lower / scale) + ", " + String(format: format, i.upper / scale) + "]"
            if !i.reachesConfidence { ci += "*" }
        }
        return (m, ci)
    }

    /// The header of the ratio columns: "vs linux-pipe", and the usual placement's beside it.
    public var ratioHeaders: [String] { ["vs linux-pipe"] + (usualHeader.map { [$0] } ?? []) }

    /// The "vs linux-pipe" cell, and when the run's placement drifted, the ratio over the
    /// usual placement's rounds beside it.
    public func ratioCells(_ g: ResultsSummary.Group, _ column: String) -> [String] {
        let base = baseline(for: g)
        return [ratioText(g, base, column)] + (drift.map { [ratioText(g, base, column, onlyUsualPlacement: $0)] } ?? [])
    }

    /// Columns left out when matching a configuration with its linux-pipe baseline: the
    /// engine's tunables, the transport, the read size and what each workload names
    /// (kqueue is the engine's, so an engine kqueue fan-in is compared with Linux's poll).
    static let baselineIgnored: Set<String> = Set(EngineTunable.all.map(\.column) + ["transport", "read_size_B"])
        .union(WorkloadKind.registered.flatMap { $0.baselineIgnoredColumns })

    /// The linux-pipe group measured with the same workload parameters, if any.
    func baseline(for g: ResultsSummary.Group) -> ResultsSummary.Group? {
        let t = table
        let r = g.rows[0]
        guard t.value(r, "transport") != "linux-pipe" else { return nil }
        var ignore = Self.baselineIgnored
        // A kernel pipe size is matched between kernel transports (vmsplice 1M against the
        // pipe at 1M); other transports take the pipe at the kernel's default size if measured.
        let kernel = ["linux-pipe", "linux-vmsplice"].contains(t.value(r, "transport"))
        if !kernel { ignore.insert("kernel_pipe_size_asked_B") }
        let key = ResultsSummary.parameterKey(t, r, ignoring: ignore)
        let readSize = t.value(r, "read_size_B")
        let candidates = defaultKernelPipeFirst(groups.filter {
            t.value($0.rows[0], "transport") == "linux-pipe" && t.value($0.rows[0], "run_id") == t.value(r, "run_id")
                && ResultsSummary.parameterKey(t, $0.rows[0], ignoring: ignore) == key
        })
        if t.value(r, "transport") == "memcpy" {
            // One thread: compare with a linux-pipe that reads what it writes, wherever its reader ran.
            let looser = ignore.union(["reader_cpu", "reader_node"])
            let key = ResultsSummary.parameterKey(t, r, ignoring: looser)
            let pipes = defaultKernelPipeFirst(groups.filter {
                t.value($0.rows[0], "transport") == "linux-pipe" && t.value($0.rows[0], "run_id") == t.value(r, "run_id")
                    && ResultsSummary.parameterKey(t, $0.rows[0], ignoring: looser) == key
            })
            return pipes.first { t.value($0.rows[0], "read_size_B") == t.value($0.rows[0], "write_size_B") } ?? pipes.first
        }
        return candidates.first { t.value($0.rows[0], "read_size_B") == readSize }
    }

    /// Groups at the kernel's default pipe size first, otherwise in order.
    func defaultKernelPipeFirst(_ gs: [ResultsSummary.Group]) -> [ResultsSummary.Group] {
        let isDefault = { (g: ResultsSummary.Group) in table.value(g.rows[0], "kernel_pipe_size_asked_B").isEmpty }
        return gs.filter(isDefault) + gs.filter { !isDefault($0) }
    }

    /// The ratio to the baseline measured in the same run: paired round by round (the median
    /// of per-round ratios, order-statistic interval) when both have the same rounds, else the
    /// ratio of medians with its bootstrap interval, marked "(unpaired)".
    /// With `onlyUsualPlacement`, only the rounds `drift` does not name as off the usual
    /// placement, and no unpaired fallback.
    func ratioText(_ g: ResultsSummary.Group, _ base: ResultsSummary.Group?, _ column: String,
                   onlyUsualPlacement drift: ResultsSummary.PlacementDrift? = nil) -> String {
        guard let base else { return "" }
        if let r = ResultsSummary.pairedRatio(g, over: base, column, onlyUsualPlacementOf: drift) {
            return String(format: "%.2fx [%.2f, %.2f]", r.estimate, r.lower, r.upper) + (r.reachesConfidence ? "" : "*")
        }
        guard drift == nil else { return "" }
        guard let r = Statistics.bootstrapRatioOfMedians(baseline: base.samples(column), candidate: g.samples(column)) else { return "" }
        return String(format: "%.2fx [%.2f, %.2f] (unpaired)", r.estimate, r.lower, r.upper)
    }
}
