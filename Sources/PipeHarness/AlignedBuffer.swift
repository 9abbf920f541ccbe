/// A page-aligned heap buffer, pre-faulted, owned by one thread at a time.
///
/// Page alignment keeps vmsplice and the kernel's copy routines on their fast paths and makes
/// runs comparable; touching every page up front keeps page faults out of the measurement.
final class AlignedBuffer {
    let base: UnsafeMutableRawPointer
    let count: Int

    init(count: Int, fill: UInt8 = 0x5A) {
        self.count = max(count, 1)
        base = UnsafeMutableRawPointer.allocate(byteCount: self.count, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: fill, count: self.count)
    }

    deinit { base.deallocate() }
}
