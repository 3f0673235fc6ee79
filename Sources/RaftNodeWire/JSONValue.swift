import Foundation

/// A small JSON value with a deterministic, compact serialization (keys in the given order).
public enum JSONValue: Sendable, Hashable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.serialized == b.serialized }
    public func hash(into h: inout Hasher) { h.combine(serialized) }

    public static func strings(_ s: [String]) -> JSONValue { .array(s.map { .string($0) }) }

    public var serialized: String {
        switch self {
        case let .string(s): return Self.quote(s)
        case let .int(i): return String(i)
        case let .bool(b): return b ? "true" : "false"
        case .null: return "null"
        case let .array(a): return "[" + a.map(\.serialized).joined(separator: ",") + "]"
        case let .object(o): return "{" + o.map { Self.quote($0.0) + ":" + $0.1.serialized }.joined(separator: ",") + "}"
        }
    }

    /// `s` as a JSON string literal.
    public static func quote(_ s: String) -> String {
        // Most strings need no escape: one pass over the bytes, then one copy.
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) { return "\"" + s + "\"" }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

extension JSONValue {
    /// Reads one JSON value (surrounding whitespace allowed), with the same strict reader as
    /// client request lines; nil for anything else, and for numbers that are not integers
    /// that fit an Int64 (no line the node writes has one).
    public static func parse(_ text: String) -> JSONValue? {
        var text = text
        return text.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    /// The same, from UTF-8 bytes (a line of a file, say).
    public static func parse(_ utf8: UnsafeRawBufferPointer) -> JSONValue? {
        var p = JSONBytes(utf8)
        p.skipSpace()
        guard let v = p.value(depth: 0) else { return nil }
        p.skipSpace()
        return p.index == p.bytes.count ? v : nil
    }

    /// The member `key` of an object (the first, if repeated).
    public subscript(key: String) -> JSONValue? {
        guard case let .object(members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    public var stringValue: String? { if case let .string(s) = self { s } else { nil } }
    /// A non-negative integer.
    public var uintValue: UInt64? { if case let .int(i) = self, i >= 0 { UInt64(i) } else { nil } }
    public var intValue: Int64? { if case let .int(i) = self { i } else { nil } }
    public var boolValue: Bool? { if case let .bool(b) = self { b } else { nil } }
}
