import Foundation
import Raft

/// `events.jsonl`: one JSON object a line, appended and flushed as it happens, each with
/// `ts` (UTC, RFC 3339 with microseconds), `node`, `term` and `event` (SPEC section 4).
public final class EventLog {
    private let handle: FileHandle?
    private let node: NodeID
    /// Also receives each event as `key=value` words (for node.log), if set.
    public var mirror: ((String) -> Void)?

    public init(path: String, node: NodeID) {
        self.node = node
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        handle = FileHandle(forWritingAtPath: path)
        _ = try? handle?.seekToEnd()
    }

    /// RFC 3339 with microseconds, UTC.
    public static func timestamp(_ date: Date = Date()) -> String {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        var tm = tm()
        var seconds = t.tv_sec
        gmtime_r(&seconds, &tm)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
            Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), Int(t.tv_nsec / 1000))
    }

    /// Appends one event. `fields` values are strings, integers, booleans or string arrays.
    public func write(_ event: String, term: Term, _ fields: [(String, JSONValue)] = []) {
        var object: [(String, JSONValue)] = [
            ("ts", .string(Self.timestamp())), ("node", .string(node)), ("term", .int(Int64(term))), ("event", .string(event)),
        ]
        object += fields
        let line = JSONValue.object(object).serialized + "\n"
        handle?.write(Data(line.utf8))
        if let mirror {
            mirror(object.dropFirst().map { "\($0.0)=\($0.1.serialized)" }.joined(separator: " "))
        }
    }

    public func close() { try? handle?.close() }
}

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

/// `node.log`: what a person reads: each event and each notice as a timestamped line.
public final class NodeLog {
    private let handle: FileHandle?

    public init(path: String) {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        handle = FileHandle(forWritingAtPath: path)
        _ = try? handle?.seekToEnd()
    }

    public func write(_ text: String) {
        handle?.write(Data((EventLog.timestamp() + " " + text + "\n").utf8))
    }

    public func close() { try? handle?.close() }
}
