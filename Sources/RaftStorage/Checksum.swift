import CZlib

/// CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and Go's `crc32.ChecksumIEEE`),
/// computed by the system zlib. Feed it in pieces; `value` is the checksum so far.
public struct CRC32: Sendable, Hashable {
    public private(set) var value: UInt32 = 0

    public init() {}

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        guard var base = buffer.baseAddress?.assumingMemoryBound(to: Bytef.self) else { return }
        var left = buffer.count
        var crc = uLong(value)
        while left > 0 {
            let n = min(left, Int(UInt32.max / 2))
            crc = crc32(crc, base, uInt(n))
            base += n
            left -= n
        }
        value = UInt32(truncatingIfNeeded: crc)
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    public static func of(_ bytes: [UInt8]) -> UInt32 {
        var c = CRC32()
        c.update(bytes)
        return c.value
    }

    public static func of(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var c = CRC32()
        c.update(bytes)
        return c.value
    }
}
