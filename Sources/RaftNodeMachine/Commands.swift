import Raft
import RaftNodeWire

/// A client operation as a log entry's payload: a kind byte, then length-prefixed strings.
/// A `get` goes through the log too, so that its answer is linearizable: it is answered
/// when its entry is applied, with the value as of that point.
public enum Command: Sendable, Hashable {
    case put(key: String, value: String)
    case delete(key: String)
    case get(key: String)

    /// The command of a client's write (put or delete); nil for any other request.
    public init?(write op: ClientOp) {
        switch op {
        case let .put(key, value): self = .put(key: key, value: value)
        case let .delete(key): self = .delete(key: key)
        default: return nil
        }
    }

    public func encoded() -> [UInt8] {
        var w = ByteWriter()
        switch self {
        case let .put(key, value):
            w.write(UInt8(ascii: "P"))
            w.write(key)
            w.write(value)
        case let .delete(key):
            w.write(UInt8(ascii: "D"))
            w.write(key)
        case let .get(key):
            w.write(UInt8(ascii: "G"))
            w.write(key)
        }
        return w.bytes
    }

    public init(decoding payload: [UInt8]) throws(DecodingError) {
        var r = ByteReader(payload)
        switch try r.readUInt8("command kind") {
        case UInt8(ascii: "P"): self = .put(key: try r.readString("key"), value: try r.readString("value"))
        case UInt8(ascii: "D"): self = .delete(key: try r.readString("key"))
        case UInt8(ascii: "G"): self = .get(key: try r.readString("key"))
        case let k: throw DecodingError(offset: 0, detail: "unknown command kind \(k)")
        }
        try r.expectEnd("command")
    }

    /// Applies the command to `store`; a `get` changes nothing.
    public func apply(to store: inout KeyValueStore) {
        switch self {
        case let .put(key, value): store.put(key, value)
        case let .delete(key): store.delete(key)
        case .get: break
        }
    }
}
