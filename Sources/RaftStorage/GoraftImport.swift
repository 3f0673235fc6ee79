import Raft

/// goraft's snapshot files, for users coming from goraft: a first line with the CRC-32
/// (IEEE) of the rest as `%08x`, then the JSON of goraft's `Snapshot`:
/// `{"lastIndex":N,"lastTerm":N,"peers":[{"name":..,"connectionString":..}],"state":BASE64,"path":..}`.
/// Keys match case-insensitively, as Go's decoder does (`LastIndex` works too); early
/// goraft versions wrote `peers` as a list of names, which is read too.
///
/// Importing checks the CRC, then converts the file into this package's format, streaming
/// the state from base64 into the compressor (never whole in memory). The configuration
/// is every peer as a voter (goraft's list includes the node that wrote it), with its
/// connection string as the address; the state bytes are carried over as they are.
public enum GoraftSnapshot {
    public struct Info: Sendable, Hashable {
        public var index: LogIndex
        public var term: Term
        public var configuration: Configuration
        /// Bytes of state once decoded from base64.
        public var stateSize: UInt64
    }

    /// Checks the CRC and reads what a goraft snapshot file holds, except its state.
    public static func inspect(path: String) throws -> Info {
        let file = try File.openForReading(path)
        let first = try file.read(at: 0, count: 9)
        guard first.count == 9, first[8] == UInt8(ascii: "\n"), let stored = UInt32(String(decoding: first[0..<8], as: UTF8.self), radix: 16) else {
            throw StorageError(.damaged, file: path, offset: 0, "not a goraft snapshot: the first line must be 8 hex digits of CRC-32")
        }
        let source = ByteSource(file: file, start: 9, checksum: true)
        var parser = GoraftParser(source: source, path: path)
        let parsed: Result<Info, any Error>
        do { parsed = .success(try parser.parse(state: nil)) } catch { parsed = .failure(error) }
        try source.drain()
        let actual = source.crc.value
        guard actual == stored else {
            throw StorageError(.damaged, file: path, offset: 0, "CRC mismatch: the first line says \(hex8(stored)), the \(source.offset - 9) bytes after it give \(hex8(actual))")
        }
        return try parsed.get()
    }

    /// Converts the goraft snapshot at `path` into a snapshot of `store` (durable on return,
    /// older snapshots of the store deleted) and returns its metadata.
    @discardableResult
    public static func importFile(path: String, into store: SnapshotStore) throws -> SnapshotMetadata {
        let info = try inspect(path: path)
        guard !info.configuration.isEmpty else {
            throw StorageError(.damaged, file: path, "the goraft snapshot lists no peers, so it has no configuration to start from")
        }
        let writer = try store.create(index: info.index, term: info.term, configuration: info.configuration)
        var parser = GoraftParser(source: ByteSource(file: try File.openForReading(path), start: 9, checksum: false), path: path)
        _ = try parser.parse(state: writer)
        return try writer.finish()
    }
}

/// Buffered reading of a file from an offset, with a running CRC-32 of what it reads.
final class ByteSource {
    let file: File
    private var buffer: [UInt8] = []
    private var position = 0
    private var bufferOffset: UInt64
    private var atEnd = false
    private let checksum: Bool
    private(set) var crc = CRC32()

    init(file: File, start: UInt64, checksum: Bool) {
        self.file = file
        self.bufferOffset = start
        self.checksum = checksum
    }

    /// Offset in the file of the next byte.
    var offset: UInt64 { bufferOffset + UInt64(position) }

    func peek() throws -> UInt8? {
        if position == buffer.count {
            guard try refill() else { return nil }
        }
        return buffer[position]
    }

    func next() throws -> UInt8? {
        let b = try peek()
        if b != nil { position += 1 }
        return b
    }

    private func refill() throws -> Bool {
        if atEnd { return false }
        bufferOffset += UInt64(buffer.count)
        buffer = try file.read(at: bufferOffset, count: 64 << 10)
        position = 0
        if checksum { crc.update(buffer) }
        if buffer.isEmpty { atEnd = true }
        return !buffer.isEmpty
    }

    /// Reads to the end of the file (for the checksum).
    func drain() throws {
        while try refill() { position = buffer.count }
    }
}

/// A streaming reader of goraft's snapshot JSON: small values are parsed, the state is
/// decoded from base64 piece by piece into a snapshot writer (or skipped).
struct GoraftParser {
    let source: ByteSource
    let path: String
    static let maxSmallString = 1 << 20

    init(source: ByteSource, path: String) {
        self.source = source
        self.path = path
    }

    func fail(_ detail: String) -> StorageError {
        StorageError(.damaged, file: path, offset: source.offset, detail)
    }

    mutating func parse(state writer: SnapshotWriter?) throws -> GoraftSnapshot.Info {
        var index: LogIndex?
        var term: Term?
        var voters: [String] = []
        var addresses: [String: String] = [:]
        var stateSize: UInt64 = 0
        try skipSpace()
        try expect(UInt8(ascii: "{"))
        try skipSpace()
        if try source.peek() == UInt8(ascii: "}") {
            _ = try source.next()
        } else {
            while true {
                try skipSpace()
                let key = try parseString().lowercased()
                try skipSpace()
                try expect(UInt8(ascii: ":"))
                try skipSpace()
                switch key {
                case "lastindex": index = try parseUInt64("lastIndex")
                case "lastterm": term = try parseUInt64("lastTerm")
                case "peers":
                    for (name, address) in try parsePeers() {
                        voters.append(name)
                        if !address.isEmpty { addresses[name] = address }
                    }
                case "state": stateSize = try streamState(into: writer)
                default: try skipValue(depth: 0)
                }
                try skipSpace()
                guard let c = try source.next() else { throw fail("unexpected end of the JSON object") }
                if c == UInt8(ascii: "}") { break }
                guard c == UInt8(ascii: ",") else { throw fail("expected , or } in the JSON object, found \(printable(c))") }
            }
        }
        try skipSpace()
        if try source.peek() != nil { throw fail("bytes after the end of the JSON object") }
        guard let index else { throw fail("the JSON has no lastIndex") }
        guard let term else { throw fail("the JSON has no lastTerm") }
        return GoraftSnapshot.Info(index: index, term: term, configuration: Configuration(voters: voters, addresses: addresses), stateSize: stateSize)
    }

    // MARK: Pieces

    func printable(_ c: UInt8) -> String {
        c >= 0x20 && c < 0x7f ? "'\(Character(Unicode.Scalar(c)))'" : "byte \(c)"
    }

    func skipSpace() throws {
        while let c = try source.peek(), c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { _ = try source.next() }
    }

    func expect(_ c: UInt8) throws {
        guard let got = try source.next() else { throw fail("unexpected end of the JSON, expected \(printable(c))") }
        guard got == c else { throw fail("expected \(printable(c)), found \(printable(got))") }
    }

    func expectLiteral(_ word: String) throws {
        for c in word.utf8 { try expect(c) }
    }

    func parseUInt64(_ what: String) throws -> UInt64 {
        var v: UInt64 = 0
        var digits = 0
        while let c = try source.peek(), c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
            _ = try source.next()
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            guard !o1 && !o2 else { throw fail("\(what) does not fit 64 bits") }
            v = s
            digits += 1
        }
        guard digits > 0 else { throw fail("\(what) must be a non-negative integer") }
        if let c = try source.peek(), c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E") {
            throw fail("\(what) must be an integer")
        }
        return v
    }

    /// A small string (a key, a name, an address).
    func parseString() throws -> String {
        var bytes: [UInt8] = []
        try streamString { b in
            bytes.append(b)
            if bytes.count > Self.maxSmallString { throw fail("a string longer than \(Self.maxSmallString) bytes where a short one belongs") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads a JSON string, giving its UTF-8 bytes one at a time to `sink`.
    func streamString(_ sink: (UInt8) throws -> Void) throws {
        try expect(UInt8(ascii: "\""))
        while true {
            guard let c = try source.next() else { throw fail("unterminated string") }
            switch c {
            case UInt8(ascii: "\""):
                return
            case UInt8(ascii: "\\"):
                guard let e = try source.next() else { throw fail("unterminated string") }
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): try sink(e)
                case UInt8(ascii: "b"): try sink(0x08)
                case UInt8(ascii: "f"): try sink(0x0c)
                case UInt8(ascii: "n"): try sink(0x0a)
                case UInt8(ascii: "r"): try sink(0x0d)
                case UInt8(ascii: "t"): try sink(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if scalar >= 0xd800 && scalar < 0xdc00 {
                        try expect(UInt8(ascii: "\\"))
                        try expect(UInt8(ascii: "u"))
                        let low = try hex4()
                        guard low >= 0xdc00 && low < 0xe000 else { throw fail("bad surrogate pair in string") }
                        scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("bad \\u escape in string") }
                    for b in String(Character(u)).utf8 { try sink(b) }
                default: throw fail("bad escape \\\(printable(e)) in string")
                }
            default:
                guard c >= 0x20 else { throw fail("control character in string") }
                try sink(c)
            }
        }
    }

    func hex4() throws -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let c = try source.next(), let d = UInt32(String(Unicode.Scalar(c)), radix: 16) else { throw fail("bad \\u escape in string") }
            v = v << 4 | d
        }
        return v
    }

    func parsePeers() throws -> [(String, String)] {
        if try source.peek() == UInt8(ascii: "n") {
            try expectLiteral("null")
            return []
        }
        try expect(UInt8(ascii: "["))
        var peers: [(String, String)] = []
        try skipSpace()
        if try source.peek() == UInt8(ascii: "]") {
            _ = try source.next()
            return peers
        }
        while true {
            try skipSpace()
            if try source.peek() == UInt8(ascii: "\"") {
                peers.append((try parseString(), ""))
            } else {
                var name: String?
                var address = ""
                try expect(UInt8(ascii: "{"))
                try skipSpace()
                if try source.peek() == UInt8(ascii: "}") {
                    _ = try source.next()
                } else {
                    while true {
                        try skipSpace()
                        let key = try parseString().lowercased()
                        try skipSpace()
                        try expect(UInt8(ascii: ":"))
                        try skipSpace()
                        switch key {
                        case "name": name = try parseString()
                        case "connectionstring": address = try parseString()
                        default: try skipValue(depth: 1)
                        }
                        try skipSpace()
                        guard let c = try source.next() else { throw fail("unexpected end of a peer") }
                        if c == UInt8(ascii: "}") { break }
                        guard c == UInt8(ascii: ",") else { throw fail("expected , or } in a peer, found \(printable(c))") }
                    }
                }
                guard let name, !name.isEmpty else { throw fail("a peer without a name") }
                peers.append((name, address))
            }
            try skipSpace()
            guard let c = try source.next() else { throw fail("unexpected end of peers") }
            if c == UInt8(ascii: "]") { return peers }
            guard c == UInt8(ascii: ",") else { throw fail("expected , or ] in peers, found \(printable(c))") }
        }
    }

    /// Decodes the base64 state into `writer` (or only checks it), returning its size.
    func streamState(into writer: SnapshotWriter?) throws -> UInt64 {
        if try source.peek() == UInt8(ascii: "n") {
            try expectLiteral("null")
            return 0
        }
        var decoder = Base64Decoder()
        var out: [UInt8] = []
        out.reserveCapacity(64 << 10)
        var total: UInt64 = 0
        try streamString { c in
            guard decoder.feed(c, into: &out) else { throw fail("state is not base64 (\(printable(c)))") }
            if out.count >= 64 << 10 {
                total += UInt64(out.count)
                try writer?.write(out)
                out.removeAll(keepingCapacity: true)
            }
        }
        guard decoder.finish(into: &out) else { throw fail("state is not base64: it ends in the middle of a group") }
        total += UInt64(out.count)
        try writer?.write(out)
        return total
    }

    func skipValue(depth: Int) throws {
        guard depth < 64 else { throw fail("JSON nested too deeply") }
        guard let c = try source.peek() else { throw fail("unexpected end of the JSON") }
        switch c {
        case UInt8(ascii: "\""):
            try streamString { _ in }
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            _ = try source.next()
            try skipSpace()
            if try source.peek() == close {
                _ = try source.next()
                return
            }
            while true {
                try skipSpace()
                if c == UInt8(ascii: "{") {
                    try streamString { _ in }
                    try skipSpace()
                    try expect(UInt8(ascii: ":"))
                    try skipSpace()
                }
                try skipValue(depth: depth + 1)
                try skipSpace()
                guard let d = try source.next() else { throw fail("unexpected end of the JSON") }
                if d == close { return }
                guard d == UInt8(ascii: ",") else { throw fail("expected , or \(printable(close)), found \(printable(d))") }
            }
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        default:
            var any = false
            while let d = try source.peek(), (d >= UInt8(ascii: "0") && d <= UInt8(ascii: "9")) || d == UInt8(ascii: "-") || d == UInt8(ascii: "+") || d == UInt8(ascii: ".") || d == UInt8(ascii: "e") || d == UInt8(ascii: "E") {
                _ = try source.next()
                any = true
            }
            guard any else { throw fail("unexpected \(printable(c)) in the JSON") }
        }
    }
}

/// Standard base64 (Go's `base64.StdEncoding`, which encodes `[]byte` in JSON), decoded a
/// character at a time. Line breaks are ignored, as Go does.
struct Base64Decoder {
    private var bits: UInt32 = 0
    private var count = 0
    private var padding = 0

    /// Takes one character; false if it is not base64 here.
    mutating func feed(_ c: UInt8, into out: inout [UInt8]) -> Bool {
        if c == 0x0a || c == 0x0d { return true }
        if c == UInt8(ascii: "=") {
            guard count >= 2 || padding > 0 else { return false }
            padding += 1
            count += 1
            guard padding <= 2 else { return false }
            if count == 4 { flush(into: &out) }
            return true
        }
        guard padding == 0, let v = Self.value(c) else { return false }
        bits = bits << 6 | UInt32(v)
        count += 1
        if count == 4 { flush(into: &out) }
        return true
    }

    private mutating func flush(into out: inout [UInt8]) {
        let b = bits << (6 * UInt32(padding))
        out.append(UInt8(truncatingIfNeeded: b >> 16))
        if padding < 2 { out.append(UInt8(truncatingIfNeeded: b >> 8)) }
        if padding < 1 { out.append(UInt8(truncatingIfNeeded: b)) }
        bits = 0
        count = 0
        if padding > 0 { padding = 3 }  // nothing may follow padding
    }

    /// Ends the input; false if it stopped inside a group. A final group without padding
    /// (2 or 3 characters) is accepted.
    mutating func finish(into out: inout [UInt8]) -> Bool {
        if padding == 3 || count == 0 { return true }
        guard padding == 0, count >= 2 else { return false }
        let missing = 4 - count
        let b = bits << (6 * UInt32(missing))
        out.append(UInt8(truncatingIfNeeded: b >> 16))
        if missing < 2 { out.append(UInt8(truncatingIfNeeded: b >> 8)) }
        count = 0
        return true
    }

    static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
