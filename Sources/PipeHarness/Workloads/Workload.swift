import PipeEngine
import PipeResults

/// A workload: what one measurement does, declared in its own folder under `Workloads/` and
/// listed once in `WorkloadKind.registered`.
///
/// A definition says which parameters it takes beyond the common ones (its own sweep axes,
/// ``WorkloadParameter``), which of the common ones apply, what it refuses, how a sweep point
/// becomes its `Configuration`, how one repetition runs (verification included), the number a
/// repetition is summarised by (``WorkloadMetric``), the CSV cells it fills and the summary
/// table `run` and `sweep` print for it. Everything the sweep, the runner, the results
/// records and the summary know of a workload comes through here.
public protocol WorkloadDefinition: SendableMetatype {
    associatedtype Configuration: Sendable
    associatedtype Result: WorkloadResult

    /// Its name on the command line, in config files and in the `workload` column.
    static var kind: WorkloadKind { get }
    /// What it measures, in a few words (`throughput`), for the `--workload` help.
    static var purpose: String { get }
    static var metric: WorkloadMetric { get }
    /// Its own parameters, in the order of the results columns and of labels.
    static var parameters: [WorkloadParameter] { get }
    /// Whether `--write-size`, `--read-size` and `--total` apply.
    static var usesStreamSizes: Bool { get }
    /// Axes named in every label of this workload (the shape of a multi-stream run).
    static var alwaysLabelled: [SweepAxis] { get }
    /// Results columns left out when looking for the linux-pipe point to compare with.
    static var baselineIgnoredColumns: Set<String> { get }

    /// Streams running at once (the auto total is split among them).
    static func concurrentStreams(_ point: SweepPoint) -> Int
    /// Defaults of the engine configuration that differ for this workload.
    static func engineDefaults(_ configuration: inout PipeConfiguration)
    /// Resets what does not apply to `point` beyond what `applies` decides.
    static func normalize(_ point: inout SweepPoint)
    /// Checks a whole sweep before it is expanded; may change its base point.
    static func prepare(_ sweep: SweepSpecification, base: inout SweepPoint) throws
    /// Refuses what this workload cannot measure (transports, combinations).
    static func validate(_ point: SweepPoint) throws
    /// CPUs this workload names beyond `--writer-cpu` and `--reader-cpu`, with their axis.
    static func namedCPUs(_ point: SweepPoint) -> [(SweepAxis, Int)]
    /// Where its threads go: one placement per stream, or one for all.
    static func placements(_ point: SweepPoint) -> [Placement]

    static func configuration(_ point: SweepPoint, options: TransportOptions) -> Configuration
    /// One repetition. A verified run that delivered a wrong or missing byte throws: its
    /// timing measures a broken transport.
    static func measure(_ configuration: Configuration) throws -> Result
    /// The CPUs of the core-to-core probe when this configuration is the first of a run.
    static func probeCPUs(_ configuration: Configuration) -> (Int, Int)?

    /// Its own parameter columns of one row.
    static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow)
    /// Its table in the summary of `run` and `sweep`, nil when it has none to show.
    static func summary(_ groups: [ResultsSummary.Group], _ context: inout SummaryContext) -> String?
}

extension WorkloadDefinition {
    public static var parameters: [WorkloadParameter] { [] }
    public static var usesStreamSizes: Bool { true }
    public static var alwaysLabelled: [SweepAxis] { [] }
    public static var baselineIgnoredColumns: Set<String> { [] }
    public static func concurrentStreams(_ point: SweepPoint) -> Int { 1 }
    public static func engineDefaults(_ configuration: inout PipeConfiguration) {}
    public static func normalize(_ point: inout SweepPoint) {}
    public static func prepare(_ sweep: SweepSpecification, base: inout SweepPoint) throws {}
    public static func validate(_ point: SweepPoint) throws {}
    public static func namedCPUs(_ point: SweepPoint) -> [(SweepAxis, Int)] { [] }
    public static func placements(_ point: SweepPoint) -> [Placement] { [point.placement] }
    public static func recordParameters(_ point: SweepPoint, into row: inout ResultsRow) {}

    /// For `prepare`: a flag of this workload's own (`--kva-tier`, `--trace`) given alone
    /// means this workload; beside other workloads, this one must be among them.
    static func implied(by axis: SweepAxis, _ sweep: SweepSpecification, base: inout SweepPoint) throws {
        guard sweep.values(of: axis) != nil else { return }
        if let workloads = sweep.values(of: .workload) {
            guard workloads.contains(kind.rawValue) else {
                throw SweepError("\(axis.flag) applies to --workload \(kind.rawValue); add it to --workload or leave out \(axis.flag)")
            }
        } else {
            base.workload = kind
        }
    }

    /// The type-erased workload that runs `configuration`.
    public static func workload(_ configuration: Configuration) -> Workload {
        Workload(kind: kind, metric: metric, configuration: configuration,
                 probeCPUs: probeCPUs(configuration), measure: { try measure(configuration) })
    }
}

/// The number a repetition is summarised by.
public struct WorkloadMetric: Sendable, Equatable {
    /// `throughput`, `p50 round trip`.
    public let name: String
    /// `B/s`, `ns`.
    public let unit: String
    public let higherIsBetter: Bool

    public init(name: String, unit: String, higherIsBetter: Bool) {
        self.name = name
        self.unit = unit
        self.higherIsBetter = higherIsBetter
    }

    /// A throughput: bytes per second, higher is better.
    public static func bytesPerSecond(_ name: String) -> WorkloadMetric { WorkloadMetric(name: name, unit: "B/s", higherIsBetter: true) }
}

/// What one repetition of a workload produced: its metric's value and the CSV cells it fills.
public protocol WorkloadResult: Encodable, Sendable {
    /// The metric's value (`WorkloadDefinition.metric`).
    var value: Double { get }
    /// Fills this result's columns of a results row.
    func record(into row: inout ResultsRow)
    /// The timed span of the repetition, ns (a stream's first write to its last byte read),
    /// for sizing repetitions by time; nil: the runner times the whole measurement.
    var timedNs: Int64? { get }
}

extension WorkloadResult {
    public var timedNs: Int64? { nil }
}

/// One thing to measure: a workload's configuration, ready to run, with the workload's
/// metric. Made by a `WorkloadDefinition` (`StreamWorkload.workload(config)`, `.stream(config)`).
public struct Workload: Sendable {
    public let kind: WorkloadKind
    public let metric: WorkloadMetric
    /// The definition's `Configuration` (`as? StreamConfig`).
    public let configuration: any Sendable
    let probeCPUs: (Int, Int)?
    let measure: @Sendable () throws -> any WorkloadResult
    /// Set when the amount of work is the runner's to choose (`--total auto`): the runner
    /// sizes each repetition by time in the warm-up (`Runner.minTimeNs`).
    public internal(set) var sizing: TimeSizing? = nil

    public var metricName: String { metric.name }
    public var unit: String { metric.unit }
    public var higherIsBetter: Bool { metric.higherIsBetter }
}

/// A parameter that belongs to one workload (`--message-size` to pingpong, `--writers` to
/// fanin): its flag and config-file key, how its values are spelled and checked, and its
/// default. Declared in the workload's folder, listed in its definition's `parameters`; the
/// sweep axis is `.parameter(p)`.
public struct WorkloadParameter: Sendable, Hashable, CustomStringConvertible {
    /// The flag and config-file key, without the dashes.
    public let name: String
    public let kind: SweepAxis.Kind
    /// The config-file table it may appear under.
    public let group: String
    /// Its name in configuration labels.
    public let short: String
    /// The text of the value a point has when none is given; nil: unset.
    public let defaultValue: String?
    /// One flag or config value to the canonical text of each value (nil: by `kind`).
    let expandText: (@Sendable (String) throws -> [String])?
    /// One canonical value to the text a point stores, or a clear error.
    let accept: @Sendable (String) throws -> String
    /// Whether a point of another workload that sets it is refused (rather than the value
    /// being dropped, as a sweep drops what does not apply to a point).
    public let refusedElsewhere: Bool

    public init(
        _ name: String, kind: SweepAxis.Kind, group: String = "workload", short: String? = nil,
        default defaultValue: String? = nil,
        expand: (@Sendable (String) throws -> [String])? = nil, refusedElsewhere: Bool = false,
        accept: @escaping @Sendable (String) throws -> String
    ) {
        self.name = name
        self.kind = kind
        self.group = group
        self.short = short ?? name
        self.defaultValue = defaultValue
        self.expandText = expand
        self.refusedElsewhere = refusedElsewhere
        self.accept = accept
    }

    public var flag: String { "--\(name)" }
    public var description: String { name }
    public static func == (a: Self, b: Self) -> Bool { a.name == b.name }
    public func hash(into h: inout Hasher) { h.combine(name) }

    /// The workloads that list it, in registry order: the one whose folder declares it, and
    /// any other that shares it (contend counts its writer threads with fanin's `--writers`).
    public var users: [WorkloadKind] {
        WorkloadKind.allCases.filter { $0.definition.parameters.contains(self) }
    }

    /// The first workload that lists it.
    public var owner: WorkloadKind { users.first! }

    /// "--workload fanin or contend": the workloads it applies to, for messages.
    public var usersListed: String { users.map(\.rawValue).joined(separator: " or ") }

    // Checks shared by the declarations.

    public static func wholeNumber(_ text: String, _ flag: String) throws -> Int {
        guard let v = Int(text) else { throw SweepError("\(flag): '\(text)' is not a whole number") }
        return v
    }
    public static func positive(_ text: String, _ flag: String) throws -> Int {
        let v = try wholeNumber(text, flag)
        guard v > 0 else { throw SweepError("\(flag) \(text): must be positive") }
        return v
    }
    public static func nonNegative(_ text: String, _ flag: String) throws -> Int {
        let v = try wholeNumber(text, flag)
        guard v >= 0 else { throw SweepError("\(flag) \(text): must not be negative") }
        return v
    }
    public static func positiveSize(_ text: String, _ flag: String) throws -> Int {
        let v: Int
        do { v = try SizeSpec.parse(text) } catch let e as SweepError { throw SweepError("\(flag): \(e.message)") }
        guard v > 0 else { throw SweepError("\(flag) \(text): must be positive") }
        return v
    }
}

/// The workloads, by the name the command line, the config files, the results' `workload`
/// column and the configuration labels use. Each is declared in its folder
/// (`WorkloadKind.stream`) and listed once in `registered`.
public struct WorkloadKind: RawRepresentable, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String

    /// A new name; a workload declares its own once, in its folder.
    public init(named name: String) { rawValue = name }

    /// A registered workload by name.
    public init?(rawValue: String) {
        guard Self.registered.contains(where: { $0.kind.rawValue == rawValue }) else { return nil }
        self.rawValue = rawValue
    }

    public static var allCases: [WorkloadKind] { registered.map { $0.kind } }

    /// Every workload parameter once, in registry order (a shared one where it is first listed).
    public static var allParameters: [WorkloadParameter] {
        var seen = Set<String>()
        return registered.flatMap { $0.parameters }.filter { seen.insert($0.name).inserted }
    }

    /// The definition of a registered workload.
    public var definition: any WorkloadDefinition.Type {
        Self.registered.first { $0.kind.rawValue == rawValue }!
    }

    public var description: String { rawValue }

    /// "stream (throughput), pingpong (round-trip latency) … or kva-pressure (…)", names
    /// quoted with `quote`: for help and documentation.
    public static func listed(quote: String = "") -> String {
        let items = registered.map { "\(quote)\($0.kind.rawValue)\(quote) (\($0.purpose))" }
        return items.count < 2 ? items.joined() : items.dropLast().joined(separator: ", ") + " or " + items.last!
    }
}

/// A workload whose bytes per repetition (per stream) the runner chooses, so that a repetition
/// lasts at least a set time: `--total auto` under `--min-time`.
public struct TimeSizing: Sendable {
    /// The bytes per stream the workload moves now.
    public let total: Int
    /// Totals are whole multiples of this (the write size).
    public let granule: Int
    let make: @Sendable (Int) throws -> Workload

    public init(total: Int, granule: Int, make: @escaping @Sendable (Int) throws -> Workload) {
        self.total = total
        self.granule = max(1, granule)
        self.make = make
    }

    /// The same workload moving `total` bytes per stream, still sized by time.
    public func resized(_ total: Int) throws -> Workload {
        var w = try make(total)
        w.sizing = TimeSizing(total: total, granule: granule, make: make)
        return w
    }

    /// The largest total calibration goes to (per stream): 64 GiB.
    public static let maxTotal = 1 << 36
    /// The most one calibration step multiplies the total by. A repetition of a few
    /// milliseconds is dominated by its start (threads, pipes, first faults) and by any one
    /// hiccup, so the rate it shows is re-measured at each step before it is trusted.
    public static let maxGrowth = 16.0
    /// Calibration aims this much above the minimum, so that repetitions slower than the
    /// calibrating one still last the minimum.
    public static let margin = 1.2

    /// The total to measure next, having measured `elapsedNs` for `total`; nil when that
    /// already lasts `minTimeNs` (or cannot grow). Grows by at least 1.25× a step, at most
    /// `maxGrowth`, so calibration ends in a few steps.
    public static func nextTotal(total: Int, elapsedNs: Int64, minTimeNs: Int64, granule: Int) -> Int? {
        guard elapsedNs < minTimeNs, total < maxTotal else { return nil }
        let wanted = Double(minTimeNs) * margin / Double(max(elapsedNs, 1))
        let factor = min(maxGrowth, max(1.25, wanted))
        let g = max(1, granule)
        let grown = (Int((Double(total) * factor).rounded(.up)) + g - 1) / g * g
        return min(maxTotal / g * g, max(grown, total + g))
    }
}
