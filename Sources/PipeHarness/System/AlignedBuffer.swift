import CPipeSys

/// A page-aligned heap buffer, pre-faulted, owned by one thread at a time.
///
/// Page alignment keeps vmsplice and the kernel's copy routines on their fast paths and makes
/// runs comparable; touching every page up front keeps page faults out of the measurement.
/// With a NUMA node, the buffer is its own mapping, bound to that node (`mbind`) before the
/// first touch, so every page is allocated there; `location()` checks where they landed.
final class AlignedBuffer {
    let base: UnsafeMutableRawPointer
    let count: Int
    /// The node the pages were bound to, if any.
    let node: Int?
    /// Length of the private mapping (node-bound buffers only), else 0.
    private let mappedLength: Int

    init(count: Int, fill: UInt8 = 0x5A) {
        self.count = max(count, 1)
        node = nil
        mappedLength = 0
        base = UnsafeMutableRawPointer.allocate(byteCount: self.count, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: fill, count: self.count)
    }

    /// A buffer whose pages are bound to `node`; nil `node` is the plain heap buffer.
    init(count: Int, fill: UInt8 = 0x5A, node: Int?, what: String) throws {
        self.count = max(count, 1)
        self.node = node
        guard let node else {
            mappedLength = 0
            base = UnsafeMutableRawPointer.allocate(byteCount: self.count, alignment: 4096)
            base.initializeMemory(as: UInt8.self, repeating: fill, count: self.count)
            return
        }
        let length = (self.count + 4095) & ~4095
        var error: Int32 = 0
        guard let p = pb_mmap_anonymous_rw(length, &error) else {
            throw HarnessError.system(call: "mmap", errno: error, context: "\(what), \(length) bytes")
        }
        do {
            try bindMemory(p, length, toNode: node, what: what)
        } catch {
            _ = pb_munmap(p, length)
            throw error
        }
        mappedLength = length
        base = p
        base.initializeMemory(as: UInt8.self, repeating: fill, count: self.count)
    }

    /// Where the buffer's pages are now.
    func location(_ what: String) -> MemoryLocation {
        MemoryLocation.query(base, bytes: count, what: what, requestedNode: node)
    }

    deinit {
        if mappedLength > 0 { _ = pb_munmap(base, mappedLength) } else { base.deallocate() }
    }
}
