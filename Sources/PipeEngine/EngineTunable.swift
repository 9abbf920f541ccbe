/// One tunable of the engine, declared once: its sysctl, the name a tool sets it by (command-line
/// flag, sweep axis and config-file key), its results column, how its value is written, its
/// default, and how a live kernel reads (and, for run-time sysctls, changes) it. `PipeSystem`'s
/// sysctls, PipeHarness's sweep axes and results schema, and `pipebench`'s options and
/// `sysctl` command are all derived from `EngineTunable.all`: adding a tunable is one entry
/// here, plus the engine code that obeys it.
///
/// A value is the sysctl's integer: bytes for sizes, nanoseconds for the wait, the index of
/// the choice for `hold` and `copy`, 0 or 1 for a switch.
public struct EngineTunable: Sendable, Hashable, CustomStringConvertible {
    /// How the value is written by people (the integer is always the sysctl's).
    public enum Kind: Sendable, Hashable {
        /// Bytes (`4K`, `1M` on the command line).
        case size
        /// One of these names; the value is its index.
        case choice([String])
        /// `on` or `off`.
        case onOff
        /// The longest spin before parking, in ns: `park` (0), `spin` (the default) or `spin:NS`.
        case spin
    }

    /// The name a tool sets it by: `--mindirect`, the sweep axis `mindirect`, the config key.
    public let flag: String
    /// Short name in configuration labels (`md=8K`).
    public let label: String
    /// The sysctl (`kern.ipc.pipe_mindirect`, or `engine.*` for what FreeBSD fixes at build time).
    public let sysctl: String
    public let access: SysctlDescription.Access
    /// The sysctl's description (FreeBSD's where it has one).
    public let sysctlDescription: String
    /// The results column, and what it holds.
    public let column: String
    public let columnDescription: String
    /// The word the configuration's validation messages use for it (`PIPE_SIZE`), so that an
    /// error can name the flag that sets it; nil if none does.
    public let validationName: String?
    /// Command-line help, and the value's placeholder.
    public let help: String
    public let valueName: String
    public let kind: Kind
    let read: @Sendable (PipeConfiguration) -> Int
    let write: @Sendable (inout PipeConfiguration, Int) -> Void
    /// What a live kernel has in force.
    let current: @Sendable (PipeKernel) -> Int
    /// For run-time (RW) sysctls: checks and stores a new value.
    let store: (@Sendable (PipeKernel, Int) throws(Errno) -> Void)?

    /// The value `configuration` gives it.
    public func value(in configuration: PipeConfiguration) -> Int { read(configuration) }

    /// Sets it in `configuration` (not validated: `PipeConfiguration.validate` does that).
    public func set(_ value: Int, in configuration: inout PipeConfiguration) { write(&configuration, value) }

    public var defaultValue: Int { read(PipeConfiguration()) }

    public var description: String { flag }
    public static func == (a: EngineTunable, b: EngineTunable) -> Bool { a.flag == b.flag }
    public func hash(into h: inout Hasher) { h.combine(flag) }

    /// The tunable set by `flag`.
    public static func named(_ flag: String) -> EngineTunable? { byFlag[flag] }
    private static let byFlag = Dictionary(uniqueKeysWithValues: all.map { ($0.flag, $0) })

    /// Every tunable a tool can set, in the order of their results columns.
    public static let all: [EngineTunable] = [
        EngineTunable(
            flag: "mindirect", label: "md", sysctl: "kern.ipc.pipe_mindirect", access: .readWrite,
            sysctlDescription: "Minimum write size triggering VM optimization",
            column: "pipe_mindirect_B",
            columnDescription: "engine: `kern.ipc.pipe_mindirect`, the smallest write taking the direct path.",
            validationName: "pipe_mindirect",
            help: "engine: kern.ipc.pipe_mindirect, > 512 (default 8K).", valueName: "size", kind: .size,
            read: { $0.pipeMindirect }, write: { $0.pipeMindirect = $1 },
            current: { $0.pipe_mindirect.load() },
            store: { k, value throws(Errno) in
                // Don't allow pipe_mindirect to be set so low that we violate atomicity.
                if value <= PIPE_BUF { throw .invalidArgument }
                k.pipe_mindirect.store(value)
            }),
        EngineTunable(
            flag: "pipe-size", label: "ps", sysctl: "engine.pipe_size", access: .tunable,
            sysctlDescription: "PIPE_SIZE: initial forward buffer size",
            column: "pipe_size_B", columnDescription: "engine: `PIPE_SIZE`.", validationName: "PIPE_SIZE",
            help: "engine: PIPE_SIZE (default 16K).", valueName: "size", kind: .size,
            read: { $0.pipeSize }, write: { $0.pipeSize = $1 }, current: { $0.PIPE_SIZE }, store: nil),
        EngineTunable(
            flag: "big-pipe-size", label: "bps", sysctl: "engine.big_pipe_size", access: .tunable,
            sysctlDescription: "BIG_PIPE_SIZE: largest buffer size",
            column: "big_pipe_size_B", columnDescription: "engine: `BIG_PIPE_SIZE`.", validationName: "BIG_PIPE_SIZE",
            help: "engine: BIG_PIPE_SIZE (default 64K).", valueName: "size", kind: .size,
            read: { $0.bigPipeSize }, write: { $0.bigPipeSize = $1 }, current: { $0.BIG_PIPE_SIZE }, store: nil),
        EngineTunable(
            flag: "small-pipe-size", label: "sps", sysctl: "engine.small_pipe_size", access: .tunable,
            sysctlDescription: "SMALL_PIPE_SIZE: reverse and low-KVA buffer size",
            column: "small_pipe_size_B", columnDescription: "engine: `SMALL_PIPE_SIZE`.", validationName: "SMALL_PIPE_SIZE",
            help: "engine: SMALL_PIPE_SIZE (default 4K).", valueName: "size", kind: .size,
            read: { $0.smallPipeSize }, write: { $0.smallPipeSize = $1 }, current: { $0.SMALL_PIPE_SIZE }, store: nil),
        EngineTunable(
            flag: "maxpipekva", label: "maxpipekva", sysctl: "kern.ipc.maxpipekva", access: .tunable,
            sysctlDescription: "Pipe KVA limit",
            column: "maxpipekva_B", columnDescription: "engine: `kern.ipc.maxpipekva`.", validationName: "maxpipekva",
            help: "engine: kern.ipc.maxpipekva (default physical memory / 64).", valueName: "size", kind: .size,
            read: { $0.maxpipekva }, write: { $0.maxpipekva = $1 }, current: { $0.maxpipekva }, store: nil),
        EngineTunable(
            flag: "hold", label: "hold", sysctl: "engine.hold", access: .tunable,
            sysctlDescription: "Direct-write page hold: 0 none, 1 populate, 2 mlock, 3 probe",
            column: "hold", columnDescription: "engine: direct-write page hold, `none`, `populate`, `mlock` or `probe`.",
            validationName: nil,
            help: "engine: direct-write page hold: none, populate, mlock, probe.", valueName: "strategy",
            kind: .choice(HoldStrategy.allCases.map(\.rawValue)),
            read: { HoldStrategy.allCases.firstIndex(of: $0.hold)! },
            write: { $0.hold = HoldStrategy.allCases[$1] },
            current: { HoldStrategy.allCases.firstIndex(of: $0.hold)! }, store: nil),
        EngineTunable(
            flag: "copy", label: "copy", sysctl: "engine.copy", access: .tunable,
            sysctlDescription: "Buffered-write copy: 0 cached, 1 streaming (non-temporal stores)",
            column: "copy",
            columnDescription: "engine: how a buffered write copies into the pipe buffer, `cached` or `streaming` (non-temporal stores).",
            validationName: nil,
            help: "engine: how a buffered write copies into the pipe buffer: cached (memcpy) or streaming (non-temporal stores; x86-64).",
            valueName: "strategy", kind: .choice(CopyStrategy.allCases.map(\.rawValue)),
            read: { CopyStrategy.allCases.firstIndex(of: $0.copy)! },
            write: { $0.copy = CopyStrategy.allCases[$1] },
            current: { $0.streamingCopy ? 1 : 0 },   // what is in effect: 0 on non-x86-64
            store: nil),
        EngineTunable(
            flag: "wait", label: "wait", sysctl: "engine.spin_ns", access: .readWrite,
            sysctlDescription: "Longest spin before a sleeping thread parks (0: always park)",
            column: "wait_spin_ns", columnDescription: "engine: longest spin before a waiting thread parks (0 = park).",
            validationName: nil,
            help: "engine: park, spin (50 us) or spin:NS (ns, or with us/ms).", valueName: "strategy", kind: .spin,
            read: { $0.wait.maxSpinNanoseconds }, write: { $0.wait = WaitStrategy(maxSpinNanoseconds: $1) },
            current: { $0.spinNanoseconds.load() },
            store: { k, value throws(Errno) in
                if value < 0 { throw .invalidArgument }
                k.spinNanoseconds.store(value)
            }),
        EngineTunable(
            flag: "piperesize", label: "piperesize", sysctl: "kern.ipc.piperesizeallowed", access: .readWrite,
            sysctlDescription: "Pipe resizing allowed",
            column: "piperesize", columnDescription: "engine: `kern.ipc.piperesizeallowed`.", validationName: nil,
            help: "engine: kern.ipc.piperesizeallowed, on or off.", valueName: "on|off", kind: .onOff,
            read: { $0.piperesizeallowed ? 1 : 0 }, write: { $0.piperesizeallowed = $1 != 0 },
            current: { $0.piperesizeallowed.load() },
            store: { k, value throws(Errno) in
                // SYSCTL_INT: any int is stored; the seed tests `piperesizeallowed == 1`.
                guard let v = Int32(exactly: value) else { throw .invalidArgument }
                k.piperesizeallowed.store(Int(v))
            }),
    ]
}
