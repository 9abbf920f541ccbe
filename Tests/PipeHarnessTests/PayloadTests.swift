import Testing
@testable import PipeHarness

@Suite struct PayloadTests {
    @Test func fillAndCheckAgreeAtEveryAlignment() {
        let payload = Payload(seed: 1)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 100, alignment: 8)
        defer { buffer.deallocate() }
        for offset in [0, 1, 3, 7, 8, 9, 4095, 1 << 40] {
            for count in [0, 1, 7, 8, 9, 63, 100] {
                payload.fill(buffer, count: count, streamOffset: offset)
                #expect(payload.firstMismatch(buffer, count: count, streamOffset: offset) == nil)
                for i in 0..<count {
                    #expect(buffer.load(fromByteOffset: i, as: UInt8.self) == payload.byte(at: offset + i))
                }
            }
        }
    }

    @Test func checkFindsTheFirstWrongByte() throws {
        let payload = Payload()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        payload.fill(buffer, count: 256, streamOffset: 1003)
        buffer.storeBytes(of: buffer.load(fromByteOffset: 77, as: UInt8.self) ^ 1, toByteOffset: 77, as: UInt8.self)
        buffer.storeBytes(of: buffer.load(fromByteOffset: 200, as: UInt8.self) ^ 1, toByteOffset: 200, as: UInt8.self)
        let m = try #require(payload.firstMismatch(buffer, count: 256, streamOffset: 1003))
        #expect(m.offset == 1003 + 77)
        #expect(m.actual == m.expected ^ 1)
    }

    @Test func shiftedStreamIsDetected() {
        // The same bytes one word late (a repeated or dropped block) must not pass.
        let payload = Payload()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        payload.fill(buffer, count: 64, streamOffset: 8)
        #expect(payload.firstMismatch(buffer, count: 64, streamOffset: 0)?.offset == 0)
    }
}
