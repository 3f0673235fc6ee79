/// A stable 64-bit hash (FNV-1a, then a final mix), the same on every machine and every run,
/// unlike Swift's `Hasher`, which is seeded per process. Used for entry and state digests.
public struct StableHash: Sendable {
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func combine(_ bytes: some Sequence<UInt8>) {
        // Contiguous bytes (arrays, native strings' UTF-8) go through a plain pointer loop:
        // the same hash, several times faster than generic iteration over 64 KiB values.
        if bytes.withContiguousStorageIfAvailable({ combine(UnsafeRawBufferPointer($0)) }) != nil { return }
        var v = value
        for b in bytes {
            v ^= UInt64(b)
            v &*= 0x0000_0100_0000_01b3
        }
        value = v
    }

    public mutating func combine(_ buffer: UnsafeRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        // Indexing a typed pointer: iterating the raw buffer was a call per byte.
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        var v = value
        for i in 0..<buffer.count {
            v ^= UInt64(bytes[i])
            v &*= 0x0000_0100_0000_01b3
        }
        value = v
    }

    public mutating func combine(_ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { combine($0) }
    }

    public mutating func combine(_ s: String) {
        combine(UInt64(s.utf8.count))
        var s = s
        s.withUTF8 { combine(UnsafeRawBufferPointer($0)) }
    }

    /// The hash, with a final avalanche so that nearby inputs give distant outputs.
    public var finalized: UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    public static func of(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h = StableHash()
        h.combine(bytes)
        return h.finalized
    }
}

extension UInt64 {
    /// Sixteen lower-case hex digits.
    public var hex16: String {
        let s = String(self, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
