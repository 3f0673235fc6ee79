import Raft

/// A client's request (SPEC section 5), parsed.
public enum ClientOp: Sendable, Hashable {
    case put(key: String, value: String)
    case delete(key: String)
    case get(key: String)
    case status
    case snapshot
    case add(node: NodeID, address: String)
    case remove(node: NodeID)
}

/// Parses one request line: the operation, or what is wrong with it (and the id when it
/// could be read, so that the answer can carry it).
public func parseClientRequest(_ line: String) -> (id: JSONValue, op: ClientOp?, problem: String?) {
    var line = line
    return line.withUTF8 { parseClientRequest(UnsafeRawBufferPointer($0)) }
}

/// The same, from the line's bytes (what the client socket reads).
public func parseClientRequest(_ line: UnsafeRawBufferPointer) -> (id: JSONValue, op: ClientOp?, problem: String?) {
    guard let raw = RequestFields(parsing: line) else {
        return (.null, nil, "not a JSON object")
    }
    let id = raw.id
    func string(_ key: String) -> String? { raw.strings[key] }
    guard let op = string("op") else { return (id, nil, "missing \"op\"") }
    switch op {
    case "put":
        guard let key = string("key"), let value = string("value") else { return (id, nil, "put needs string \"key\" and \"value\"") }
        return (id, .put(key: key, value: value), nil)
    case "delete":
        guard let key = string("key") else { return (id, nil, "delete needs a string \"key\"") }
        return (id, .delete(key: key), nil)
    case "get":
        guard let key = string("key") else { return (id, nil, "get needs a string \"key\"") }
        return (id, .get(key: key), nil)
    case "status": return (id, .status, nil)
    case "snapshot": return (id, .snapshot, nil)
    case "add":
        guard let node = string("node"), let address = string("address"), isValidNodeName(node) else {
            return (id, nil, "add needs \"node\" (a name like n4) and \"address\"")
        }
        return (id, .add(node: node, address: address), nil)
    case "remove":
        guard let node = string("node") else { return (id, nil, "remove needs \"node\"") }
        return (id, .remove(node: node), nil)
    default:
        return (id, nil, "unknown op \"\(op)\"")
    }
}

extension ClientOp {
    /// The request line (without its newline) that asks this with `id`.
    public func line(id: JSONValue) -> String {
        var f: [(String, JSONValue)] = [("id", id)]
        switch self {
        case let .put(key, value): f += [("op", .string("put")), ("key", .string(key)), ("value", .string(value))]
        case let .delete(key): f += [("op", .string("delete")), ("key", .string(key))]
        case let .get(key): f += [("op", .string("get")), ("key", .string(key))]
        case .status: f += [("op", .string("status"))]
        case .snapshot: f += [("op", .string("snapshot"))]
        case let .add(node, address): f += [("op", .string("add")), ("node", .string(node)), ("address", .string(address))]
        case let .remove(node): f += [("op", .string("remove")), ("node", .string(node))]
        }
        return JSONValue.object(f).serialized
    }
}
