import Foundation
import NIOCore
import NIOPosix
import Raft
import RaftNodeWire

public struct ClientRequest: Sendable {
    public var id: JSONValue
    public var op: ClientOp
    public var connection: ClientConnection
}

/// Where the answer to a request goes: one client connection.
public struct ClientConnection: Sendable {
    let channel: any Channel

    /// Writes the answer line to request `id`; a closed connection drops it.
    public func answer(_ id: JSONValue, _ a: ClientAnswer) {
        channel.writeAndFlush(ByteBuffer(string: a.line(id: id) + "\n"), promise: nil)
    }
}

/// Answers given during one turn of the node's loop, handed to each connection's event loop
/// in one task at the end of the turn: a write from another thread is a task and a wake-up
/// of that event loop each, and at 64 clients a turn answers several at once.
final class AnswerBatch {
    private var byLoop: [ObjectIdentifier: (loop: any EventLoop, writes: [(channel: any Channel, line: ByteBuffer)])] = [:]

    func add(_ connection: ClientConnection, _ id: JSONValue, _ a: ClientAnswer) {
        let loop = connection.channel.eventLoop
        byLoop[ObjectIdentifier(loop), default: (loop, [])].writes.append((connection.channel, ByteBuffer(string: a.line(id: id) + "\n")))
    }

    /// Hands every answer added to its event loop: written in order, one flush a connection.
    func flush() {
        for (_, batch) in byLoop {
            let writes = batch.writes
            batch.loop.execute {
                var flushed = Set<ObjectIdentifier>()
                for w in writes { w.channel.write(w.line, promise: nil) }
                for w in writes where flushed.insert(ObjectIdentifier(w.channel)).inserted { w.channel.flush() }
            }
        }
        byLoop.removeAll(keepingCapacity: true)
    }
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
            connection.answer(.null, .failed(.badRequest, detail: "line too long"))
            onError("client", "a request line over the limit")
        case let .success(line):
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return }  // a blank line
            let (id, op, problem) = line.withUnsafeBytes { parseClientRequest($0) }
            if let op {
                submit(ClientRequest(id: id, op: op, connection: connection))
            } else {
                connection.answer(id, .failed(.badRequest, detail: problem ?? "bad request"))
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
