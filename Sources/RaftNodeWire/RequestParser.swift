/// Reads the one JSON object of a client request line, straight from its UTF-8 bytes.
///
/// Request lines carry values of up to a megabyte (the bench writes 64 KiB values), and
/// Foundation's JSONDecoder spent most of an event loop thread on them, starving the peer
/// connections that shared it. This reads the object's members in one pass: `id` (an integer
/// or a string), and every member whose value is a string; any other value is checked and
/// skipped. It is strict JSON (RFC 8259): a line that is not exactly one object, a bad escape,
/// a raw control character or invalid UTF-8 in a string is refused.
struct RequestFields {
    var id: JSONValue = .null
    var strings: [String: String] = [:]

    /// Nil when `bytes` is not one JSON object (surrounding whitespace allowed).
    init?(parsing bytes: UnsafeRawBufferPointer) {
        var p = JSONBytes(bytes)
        var id: JSONValue = .null
        var strings: [String: String] = [:]
        p.skipSpace()
        let isObject = p.container(UInt8(ascii: "{")) { key, p in
            if p.peek == UInt8(ascii: "\"") {
                guard let s = p.string() else { return false }
                if key == "id" { id = .string(s) } else { strings[key!] = s }
            } else {
                let start = p.index
                guard p.skipValue(depth: 0) else { return false }
                if key == "id" { id = p.integer(start..<p.index).map { .int($0) } ?? .null }
            }
            return true
        }
        p.skipSpace()
        guard isObject, p.index == p.bytes.count else { return nil }
        self.id = id
        self.strings = strings
    }
}

/// A cursor over JSON text (strict RFC 8259): the reader of request lines and of `JSONValue`.
struct JSONBytes {
    let bytes: UnsafeRawBufferPointer
    var index = 0
    static let maxDepth = 64

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D { index += 1 }
    }

    /// A string at the cursor (which is on its opening quote), unescaped; nil if malformed.
    mutating func string() -> String? {
        guard peek == UInt8(ascii: "\"") else { return nil }
        index += 1
        let start = index
        // The common case: no escapes, one slice validated as UTF-8. Plain byte constants:
        // `UInt8(ascii:)` was a call per byte here, most of the time of reading a history
        // of 64 KiB values.
        while index < bytes.count {
            let c = bytes[index]
            if c == 0x22 {  // "
                let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return s
            }
            if c == 0x5C { break }  // \
            if c < 0x20 { return nil }
            index += 1
        }
        guard index < bytes.count else { return nil }
        var out = Array(bytes[start..<index])
        while index < bytes.count {
            let c = bytes[index]
            index += 1
            switch c {
            case UInt8(ascii: "\""):
                return String(validating: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = peek else { return nil }
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard peek == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else { return nil }
                        index += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        return nil
                    }
                    guard let u = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    return nil
                }
            default:
                if c < 0x20 { return nil }
                out.append(c)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
            index += 1
        }
        return v
    }

    /// The value at the cursor, read whole; nil if malformed, or for a number that is not an
    /// integer literal that fits an Int64.
    mutating func value(depth: Int) -> JSONValue? {
        guard depth < Self.maxDepth, let c = peek else { return nil }
        switch c {
        case UInt8(ascii: "\""):
            return string().map { .string($0) }
        case UInt8(ascii: "{"):
            var members: [(String, JSONValue)] = []
            let ok = container(c) { key, p in
                guard let key, let v = p.value(depth: depth + 1) else { return false }
                members.append((key, v))
                return true
            }
            return ok ? .object(members) : nil
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            let ok = container(c) { _, p in
                guard let v = p.value(depth: depth + 1) else { return false }
                elements.append(v)
                return true
            }
            return ok ? .array(elements) : nil
        case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return literal("null") ? .null : nil
        default:
            let start = index
            guard number() else { return nil }
            return integer(start..<index).map { .int($0) }
        }
    }

    /// Checks and skips any value at the cursor; false if malformed.
    mutating func skipValue(depth: Int) -> Bool {
        guard depth < Self.maxDepth, let c = peek else { return false }
        switch c {
        case UInt8(ascii: "\""):
            return string() != nil
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            return container(c) { _, p in p.skipValue(depth: depth + 1) }
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        default: return number()
        }
    }

    /// Walks the object or array (`open` is `{` or `[`) at the cursor: for each element,
    /// `element` gets its key (objects) and the cursor on its value, which it must take.
    /// False if malformed.
    mutating func container(_ open: UInt8, _ element: (_ key: String?, inout JSONBytes) -> Bool) -> Bool {
        guard peek == open else { return false }
        let isObject = open == UInt8(ascii: "{")
        let close = isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")
        index += 1
        skipSpace()
        if peek == close {
            index += 1
            return true
        }
        while true {
            skipSpace()
            var key: String?
            if isObject {
                guard let k = string() else { return false }
                skipSpace()
                guard peek == UInt8(ascii: ":") else { return false }
                index += 1
                skipSpace()
                key = k
            }
            guard element(key, &self) else { return false }
            skipSpace()
            if peek == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard peek == close else { return false }
            index += 1
            return true
        }
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard index + n <= bytes.count else { return false }
        for i in 0..<n where bytes[index + i] != word.utf8Start[i] { return false }
        index += n
        return true
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    private mutating func number() -> Bool {
        func digits() -> Int {
            let s = index
            while let c = peek, c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { index += 1 }
            return index - s
        }
        if peek == UInt8(ascii: "-") { index += 1 }
        if peek == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            return false
        }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return false }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { return false }
        }
        return true
    }

    /// The number in `range` as an Int64 when it is an integer literal that fits.
    func integer(_ range: Range<Int>) -> Int64? {
        guard !range.isEmpty else { return nil }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        return Int64(text)
    }
}
