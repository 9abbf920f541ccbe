/// The verification payload: a byte stream in which every byte is a function of its offset.
///
/// The stream is a sequence of little-endian 64-bit words; word k is `mix(k ^ seed)`, where
/// `mix` is the SplitMix64 finaliser, a bijection. So each aligned word carries its own
/// sequence number in scrambled form: a dropped, repeated, reordered or altered byte, at any
/// offset and any transfer size, makes some word disagree with its position. (A plain counter
/// would also number the words, but its high bytes barely change, so a block repeated from
/// nearby could slip through a byte-wise check.)
public struct Payload: Sendable, Hashable {
    public let seed: UInt64

    public init(seed: UInt64 = 0xC0FF_EE00_D15E_A5E5) { self.seed = seed }

    @inline(__always)
    func word(_ index: UInt64) -> UInt64 {
        var z = index ^ seed
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The byte at stream offset `offset`.
    @inline(__always)
    public func byte(at offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: word(UInt64(offset) >> 3) >> (UInt64(offset & 7) * 8))
    }

    /// Writes the stream bytes [offset, offset + count) to `base`.
    public func fill(_ base: UnsafeMutableRawPointer, count: Int, streamOffset offset: Int) {
        var i = 0
        // Bytes up to the next word boundary of the stream, then whole words, then the rest.
        while i < count && (offset + i) & 7 != 0 {
            base.storeBytes(of: byte(at: offset + i), toByteOffset: i, as: UInt8.self)
            i += 1
        }
        while count - i >= 8 {
            base.storeBytes(of: word(UInt64(offset + i) >> 3).littleEndian, toByteOffset: i, as: UInt64.self)
            i += 8
        }
        while i < count {
            base.storeBytes(of: byte(at: offset + i), toByteOffset: i, as: UInt8.self)
            i += 1
        }
    }

    /// The first index in `base[0..<count]` that differs from stream bytes [offset, offset +
    /// count), with the expected and actual byte; nil if all match.
    public func firstMismatch(_ base: UnsafeRawPointer, count: Int, streamOffset offset: Int) -> Mismatch? {
        var i = 0
        while i < count && (offset + i) & 7 != 0 {
            if let m = checkByte(base, i, offset) { return m }
            i += 1
        }
        while count - i >= 8 {
            let expected = word(UInt64(offset + i) >> 3).littleEndian
            if base.loadUnaligned(fromByteOffset: i, as: UInt64.self) != expected {
                for j in i..<(i + 8) { if let m = checkByte(base, j, offset) { return m } }
            }
            i += 8
        }
        while i < count {
            if let m = checkByte(base, i, offset) { return m }
            i += 1
        }
        return nil
    }

    @inline(__always)
    private func checkByte(_ base: UnsafeRawPointer, _ i: Int, _ offset: Int) -> Mismatch? {
        let actual = base.load(fromByteOffset: i, as: UInt8.self)
        let expected = byte(at: offset + i)
        return actual == expected ? nil : Mismatch(offset: offset + i, expected: expected, actual: actual)
    }
}

/// The first wrong byte of a verified transfer, by stream offset.
public struct Mismatch: Codable, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var expected: UInt8
    public var actual: UInt8

    public var description: String {
        "byte \(offset): expected 0x\(String(expected, radix: 16)), got 0x\(String(actual, radix: 16))"
    }
}
