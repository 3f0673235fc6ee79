import Foundation
import NIOCore
import NIOPosix
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

public struct ClientRequest: Sendable {
    public var id: JSONValue
    public var op: ClientOp
    public var connection: ClientConnection
}

/// Where the answer to a request goes: one client connection.
public struct ClientConnection: Sendable {
    let channel: any Channel

    /// Writes one answer line; a closed connection drops it.
    public func answer(_ object: [(String, JSONValue)]) {
        let line = JSONValue.object(object).serialized + "\n"
        channel.writeAndFlush(ByteBuffer(string: line), promise: nil)
    }

    public func fail(_ id: JSONValue, _ error: String, _ extra: [(String, JSONValue)] = []) {
        answer([("id", id), ("ok", .bool(false)), ("error", .string(error))] + extra)
    }
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

/// "150ms", "2s", "1m" -> milliseconds; nil for anything else. The node's flags and the
/// harness's scenarios read durations the same way.
public func parseDuration(_ s: String) -> Int? {
    for (suffix, factor) in [("ms", 1), ("s", 1000), ("m", 60_000)] where s.hasSuffix(suffix) {
        let number = s.dropLast(suffix.count)
        if let n = Int(number), n >= 0, !number.hasPrefix("+") { return n * factor }
    }
    return nil
}

/// "65536", "64KiB", "1MiB", "100B" -> bytes; nil for anything else.
public func parseSize(_ s: String) -> Int? {
    for (suffix, factor) in [("KiB", 1024), ("MiB", 1 << 20), ("B", 1), ("", 1)] where s.hasSuffix(suffix) {
        if let n = Int(s.dropLast(suffix.count)), n >= 0 { return n * factor }
    }
    return nil
}

/// Node names: `[a-z][a-z0-9-]*`.
public func isValidNodeName(_ s: String) -> Bool {
    guard let first = s.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
    return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
}

/// Splits the input into lines; a line longer than `maxLength` is answered as too long and
/// skipped up to its end, and the connection goes on.
final class LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = Result<[UInt8], LineTooLong>
    struct LineTooLong: Error {}
    let maxLength: Int
    private var skipping = false
    /// Bytes of the buffer already searched for a newline: a long line arrives in many
    /// reads, and each read searches only what it added.
    private var searched = 0

    init(maxLength: Int) { self.maxLength = maxLength }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let found: Int? = buffer.withUnsafeReadableBytes { raw in
            guard raw.count > searched, let base = raw.baseAddress else { return nil }
            guard let p = memchr(base + searched, Int32(UInt8(ascii: "\n")), raw.count - searched) else { return nil }
            return UnsafeRawPointer(p) - base
        }
        guard let length = found else {
            searched = buffer.readableBytes
            if buffer.readableBytes > maxLength {
                if !skipping { context.fireChannelRead(wrapInboundOut(.failure(LineTooLong()))) }
                skipping = true
                buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
                searched = 0
            }
            return .needMoreData
        }
        searched = 0
        let bytes = buffer.readBytes(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        if skipping {
            skipping = false
            return .continue
        }
        if length > maxLength {
            context.fireChannelRead(wrapInboundOut(.failure(LineTooLong())))
            return .continue
        }
        context.fireChannelRead(wrapInboundOut(.success(bytes)))
        return .continue
    }

    func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if buffer.readableBytes > 0 && !skipping {
            // The last line, without its newline.
            context.fireChannelRead(wrapInboundOut(.success(buffer.readBytes(length: buffer.readableBytes)!)))
        }
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        searched = 0
        return .needMoreData
    }
}

final class ClientHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = Result<[UInt8], LineDecoder.LineTooLong>
    let submit: @Sendable (ClientRequest) -> Void
    let onError: @Sendable (String, String) -> Void

    init(submit: @escaping @Sendable (ClientRequest) -> Void, onError: @escaping @Sendable (String, String) -> Void) {
        self.submit = submit
        self.onError = onError
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let connection = ClientConnection(channel: context.channel)
        switch unwrapInboundIn(data) {
        case .failure:
            connection.fail(.null, "bad-request", [("detail", .string("line too long"))])
            onError("client", "a request line over the limit")
        case let .success(line):
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // a blank line
            let (id, op, problem) = line.withUnsafeBytes { parseClientRequest($0) }
            if let op {
                submit(ClientRequest(id: id, op: op, connection: connection))
            } else {
                connection.fail(id, "bad-request", [("detail", .string(problem ?? "bad request"))])
                onError("client", "bad request: \(problem ?? "?")")
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Listens for clients on a UNIX socket.
public final class ClientServer: Sendable {
    let channel: any Channel

    public static func start(
        path: String, group: any EventLoopGroup, maxLine: Int = 1 << 20,
        submit: @escaping @Sendable (ClientRequest) -> Void, onError: @escaping @Sendable (String, String) -> Void
    ) async throws -> ClientServer {
        guard path.utf8.count <= 103 else {
            throw NodeError("client socket path \(path) is \(path.utf8.count) bytes; UNIX sockets allow 103")
        }
        unlink(path)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            // A client may send its requests and shut down its side (`socat`, `nc -N`):
            // answers still go out on the other.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder(maxLength: maxLine)))
                    try channel.pipeline.syncOperations.addHandler(ClientHandler(submit: submit, onError: onError))
                }
            }
            .bind(unixDomainSocketPath: path).get()
        chmod(path, 0o600)
        return ClientServer(channel: channel)
    }

    init(channel: any Channel) { self.channel = channel }

    public func close() async {
        try? await channel.close()
    }
}

/// A node that cannot start or go on, with a message for its operator.
public struct NodeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
