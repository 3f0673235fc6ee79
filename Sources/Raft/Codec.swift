/// A small, deterministic binary encoding: big-endian fixed-width integers and
/// length-prefixed byte strings. Used for configuration payloads, log records and peer
/// frames, so that the same value gives the same bytes on every node.
public struct ByteWriter: Sendable {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 64) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }

    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

    public mutating func write(_ value: UInt32) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ value: UInt64) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// A length (UInt32) and the bytes.
    public mutating func writeBlob(_ blob: some Collection<UInt8>) {
        write(UInt32(blob.count))
        bytes.append(contentsOf: blob)
    }

    public mutating func write(_ string: String) { writeBlob(Array(string.utf8)) }

    public mutating func write(_ strings: [String]) {
        write(UInt32(strings.count))
        for s in strings { write(s) }
    }

    public mutating func writeOptional(_ string: String?) {
        write(string != nil)
        if let string { write(string) }
    }
}

/// Why bytes could not be decoded, and where.
public struct DecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var detail: String

    public init(offset: Int, detail: String) {
        self.offset = offset
        self.detail = detail
    }

    public var description: String { "\(detail) at byte \(offset)" }
}

/// Reads what `ByteWriter` wrote; every read checks the bounds and throws `DecodingError`.
public struct ByteReader {
    public let bytes: ArraySlice<UInt8>
    public private(set) var position: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.position = bytes.startIndex
    }

    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    /// Bytes not read yet.
    public var remaining: Int { bytes.endIndex - position }

    /// Offset from the start of the input, for error messages.
    public var offset: Int { position - bytes.startIndex }

    private mutating func need(_ n: Int, _ what: String) throws(DecodingError) {
        if n < 0 || remaining < n {
            throw DecodingError(offset: offset, detail: "truncated \(what): need \(n) bytes, have \(remaining)")
        }
    }

    public mutating func readUInt8(_ what: String = "byte") throws(DecodingError) -> UInt8 {
        try need(1, what)
        defer { position += 1 }
        return bytes[position]
    }

    public mutating func readBool(_ what: String = "flag") throws(DecodingError) -> Bool {
        let b = try readUInt8(what)
        guard b <= 1 else { throw DecodingError(offset: offset - 1, detail: "bad \(what) \(b)") }
        return b == 1
    }

    public mutating func readUInt32(_ what: String = "u32") throws(DecodingError) -> UInt32 {
        try need(4, what)
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[position + i]) }
        position += 4
        return v
    }

    public mutating func readUInt64(_ what: String = "u64") throws(DecodingError) -> UInt64 {
        try need(8, what)
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[position + i]) }
        position += 8
        return v
    }

    public mutating func readBlob(_ what: String = "blob") throws(DecodingError) -> ArraySlice<UInt8> {
        let n = Int(try readUInt32("\(what) length"))
        try need(n, what)
        defer { position += n }
        return bytes[position..<position + n]
    }

    public mutating func readString(_ what: String = "string") throws(DecodingError) -> String {
        let start = offset
        let blob = try readBlob(what)
        guard let s = String(validating: blob, as: UTF8.self) else {
            throw DecodingError(offset: start, detail: "\(what) is not UTF-8")
        }
        return s
    }

    public mutating func readStrings(_ what: String = "strings") throws(DecodingError) -> [String] {
        let n = Int(try readUInt32("\(what) count"))
        // Each string takes at least 4 bytes: refuse counts the input cannot hold before allocating.
        try need(n * 4, what)
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(try readString(what)) }
        return out
    }

    public mutating func readOptionalString(_ what: String = "string") throws(DecodingError) -> String? {
        try readBool("\(what) presence") ? try readString(what) : nil
    }

    public func expectEnd(_ what: String) throws(DecodingError) {
        if remaining != 0 { throw DecodingError(offset: offset, detail: "\(remaining) trailing bytes after \(what)") }
    }
}
