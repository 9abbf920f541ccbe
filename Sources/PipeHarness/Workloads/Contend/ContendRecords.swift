/// The records of the contend workload's `--verify` mode and the check of what the readers
/// received.
///
/// A record of writer w with sequence number s is `recordSize` bytes: a 16-byte header (w as
/// a little-endian UInt32, a magic UInt32, s as a UInt64) and a body of `Payload` bytes seeded
/// by w, at stream offset s × recordSize + 16 of that writer's stream, so that a body spliced
/// from another record (another writer's, or another record of the same writer's) differs.
///
/// Records that the transport keeps whole (at most its `SharedChannel.atomicWriteLimit`) are
/// checked one by one: each read whole, exactly once, and every writer's records in its own
/// order at each reader. Larger ones may interleave, as POSIX allows, and are checked for
/// loss and duplication only: the readers' bytes, counted and summed through a table of
/// 64-bit values, must add up to what the writers sent.
public struct ContendRecords: Sendable {
    public static let headerSize = 16
    static let magic: UInt32 = 0x5242_4350   // "PCBR"

    public let recordSize: Int
    public let writers: Int
    public let recordsPerWriter: Int
    public let payload: Payload

    public init(recordSize: Int, writers: Int, recordsPerWriter: Int, payload: Payload = Payload()) {
        self.recordSize = recordSize
        self.writers = writers
        self.recordsPerWriter = recordsPerWriter
        self.payload = payload
    }

    func bodyPayload(_ writer: Int) -> Payload { Payload(seed: payload.seed ^ (UInt64(writer) &* 0x9E37_79B9_7F4A_7C15)) }

    /// Writes record (writer, sequence) at `base`.
    public func fill(_ base: UnsafeMutableRawPointer, writer: Int, sequence: Int) {
        base.storeBytes(of: UInt32(writer).littleEndian, toByteOffset: 0, as: UInt32.self)
        base.storeBytes(of: Self.magic.littleEndian, toByteOffset: 4, as: UInt32.self)
        base.storeBytes(of: UInt64(sequence).littleEndian, toByteOffset: 8, as: UInt64.self)
        bodyPayload(writer).fill(base + Self.headerSize, count: recordSize - Self.headerSize,
                                 streamOffset: sequence * recordSize + Self.headerSize)
    }

    /// The writer and sequence number of the record at `base`, or why it is not a whole one.
    func parse(_ base: UnsafeRawPointer) -> Result<(writer: Int, sequence: Int), RecordFault> {
        let w = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        let m = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let s = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        guard m == Self.magic, w < writers, s < UInt64(recordsPerWriter) else { return .failure(.header) }
        let seq = Int(s)
        if let bad = bodyPayload(w).firstMismatch(base + Self.headerSize, count: recordSize - Self.headerSize,
                                                  streamOffset: seq * recordSize + Self.headerSize) {
            return .failure(.body(writer: w, sequence: seq, at: bad.offset - seq * recordSize))
        }
        return .success((w, seq))
    }

    enum RecordFault: Error {
        /// No record starts here: the bytes are the middle of one, or another's.
        case header
        /// The header is record (writer, sequence)'s but its byte `at` is not.
        case body(writer: Int, sequence: Int, at: Int)
    }

    /// One 64-bit value per byte value: the readers' bytes summed through it must equal the
    /// writers', which a lost or duplicated piece of a record would change.
    static let byteWeights: [UInt64] = (0..<256).map { Payload(seed: 0x5EED_0F_B17E5).word(UInt64($0)) }

    static func weigh(_ base: UnsafeRawPointer, _ count: Int, into sum: inout UInt64) {
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        byteWeights.withUnsafeBufferPointer { w in
            for i in 0..<count { sum &+= w[Int(bytes[i])] }
        }
    }
}

/// The first thing the contend check found wrong: what, at which reader and offset.
public struct RecordViolation: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Codable, Sendable {
        /// A read did not start with a whole record: one was split, or two interleaved.
        case split
        /// A writer's record arrived at a reader before one it wrote earlier.
        case outOfOrder = "out-of-order"
        /// A record was read twice.
        case duplicate
        /// A record was never read.
        case missing
        /// Large records: the bytes read do not add up to the bytes written.
        case lostOrDuplicated = "lost-or-duplicated"
    }
    public var kind: Kind
    /// The reader that saw it (nil: found when the readers' records were put together).
    public var reader: Int?
    /// The byte of that reader's stream where it is (nil reader: of the writer's stream).
    public var offset: Int
    public var detail: String

    public var description: String {
        let at = reader.map { "reader \($0) byte \(offset)" } ?? "byte \(offset) of the writer's stream"
        return "\(kind.rawValue) at \(at): \(detail)"
    }
}

/// What one reader checks as it reads (records kept whole by the transport) or adds up
/// (larger ones), and the records it has seen, for the exactly-once check afterwards.
struct RecordChecker {
    let records: ContendRecords
    let reader: Int
    /// Records are checked one by one (they are within the atomic limit).
    let whole: Bool
    var violation: RecordViolation?
    /// Bytes of this reader's stream so far.
    var offset = 0
    var weightSum: UInt64 = 0
    /// Per writer: the last sequence number seen, and a bit per record.
    var lastSequence: [Int]
    var seen: [[UInt64]]

    init(_ records: ContendRecords, reader: Int, whole: Bool) {
        self.records = records
        self.reader = reader
        self.whole = whole
        lastSequence = [Int](repeating: -1, count: records.writers)
        seen = whole ? [[UInt64]](repeating: [UInt64](repeating: 0, count: (records.recordsPerWriter + 63) / 64), count: records.writers) : []
    }

    /// Checks the `count` bytes one read returned.
    mutating func check(_ base: UnsafeRawPointer, _ count: Int) {
        defer { offset += count }
        guard whole else {
            ContendRecords.weigh(base, count, into: &weightSum)
            return
        }
        guard violation == nil else { return }
        let size = records.recordSize
        guard count % size == 0 else {
            violation = RecordViolation(kind: .split, reader: reader, offset: offset + count / size * size,
                                        detail: "a read returned \(count) bytes, not a multiple of the \(size)-byte record")
            return
        }
        var at = 0
        while at < count {
            switch records.parse(base + at) {
            case .failure(.header):
                violation = RecordViolation(kind: .split, reader: reader, offset: offset + at,
                                            detail: "no record starts here: one was split or two interleaved")
                return
            case .failure(.body(let w, let s, let byte)):
                violation = RecordViolation(kind: .split, reader: reader, offset: offset + at + byte,
                                            detail: "writer \(w)'s record \(s) is wrong at its byte \(byte): another write interleaved")
                return
            case .success(let (w, s)):
                if s <= lastSequence[w] {
                    let kind: RecordViolation.Kind = s == lastSequence[w] ? .duplicate : .outOfOrder
                    violation = RecordViolation(kind: kind, reader: reader, offset: offset + at,
                                                detail: "writer \(w)'s record \(s) after its record \(lastSequence[w])")
                    return
                }
                lastSequence[w] = s
                seen[w][s >> 6] |= 1 << UInt64(s & 63)
            }
            at += size
        }
    }

    /// Every record read exactly once over all readers (whole records), or the bytes adding
    /// up (larger ones): the first violation, by reader order, then writer and record order.
    static func merge(_ checkers: [RecordChecker], expectedWeight: UInt64, bytesSent: Int) -> RecordViolation? {
        if let v = checkers.compactMap(\.violation).first { return v }
        guard let first = checkers.first else { return nil }
        let records = first.records
        guard first.whole else {
            let received = checkers.reduce(0) { $0 + $1.offset }
            let weight = checkers.reduce(UInt64(0)) { $0 &+ $1.weightSum }
            if received != bytesSent || weight != expectedWeight {
                return RecordViolation(kind: .lostOrDuplicated, reader: nil, offset: 0,
                                       detail: "the readers received \(received) bytes of the \(bytesSent) written"
                                           + (received == bytesSent ? ", but not the same bytes" : ""))
            }
            return nil
        }
        let words = (records.recordsPerWriter + 63) / 64
        for w in 0..<records.writers {
            for i in 0..<words {
                var union: UInt64 = 0
                for c in checkers {
                    let bits = c.seen[w][i]
                    if union & bits != 0 {
                        let s = i * 64 + (union & bits).trailingZeroBitCount
                        return RecordViolation(kind: .duplicate, reader: nil, offset: s * records.recordSize,
                                               detail: "writer \(w)'s record \(s) was read twice (the second time by reader \(c.reader))")
                    }
                    union |= bits
                }
                let valid = i == words - 1 && records.recordsPerWriter % 64 != 0
                    ? (UInt64(1) << UInt64(records.recordsPerWriter % 64)) - 1 : ~UInt64(0)
                if union != valid {
                    let s = i * 64 + (~union & valid).trailingZeroBitCount
                    return RecordViolation(kind: .missing, reader: nil, offset: s * records.recordSize,
                                           detail: "writer \(w)'s record \(s) was never read")
                }
            }
        }
        return nil
    }
}
