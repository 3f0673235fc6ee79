import Foundation
import NIOCore
import NIOPosix
import RaftNodeMachine
import RaftNodeWire

/// One request over a node's client socket (SPEC section 5): connect, send a JSON line, read
/// the first answer line, close. One request a connection.
enum NodeClient {
    enum Answer: Sendable {
        /// The answer line.
        case answer(String)
        /// Nothing was sent: the socket is missing or refused the connection.
        case notSent(String)
        /// Sent, but no answer came (the node died, closed the connection, or the time ran out).
        case noAnswer(String)
    }

    static func send(_ line: String, to path: String, timeoutMs: Int, group: any EventLoopGroup) async -> Answer {
        let loop = group.next()
        let promise = loop.makePromise(of: String.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(Int64(max(1, min(timeoutMs, 2000)))))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AnswerHandler(promise: promise))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
        } catch {
            promise.fail(error)
            return .notSent("cannot connect to \(path): \(error)")
        }
        let timeout = loop.scheduleTask(in: .milliseconds(Int64(max(1, timeoutMs)))) { channel.close(promise: nil) }
        channel.writeAndFlush(ByteBuffer(string: line + "\n"), promise: nil)
        do {
            let answer = try await promise.futureResult.get()
            timeout.cancel()
            channel.close(promise: nil)
            return .answer(answer)
        } catch {
            timeout.cancel()
            channel.close(promise: nil)
            return .noAnswer("no answer from \(path) within \(timeoutMs)ms")
        }
    }
}

/// Collects bytes up to the first newline and completes the promise with that line; a
/// connection that closes first fails it.
private final class AnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    struct Closed: Error {}

    let promise: EventLoopPromise<String>
    var bytes: [UInt8] = []
    var done = false

    init(promise: EventLoopPromise<String>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        if let nl = bytes.firstIndex(of: UInt8(ascii: "\n")) {
            finish(.success(String(decoding: bytes[..<nl], as: UTF8.self)))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(Closed()))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(error))
        context.close(promise: nil)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure(Closed()))
    }

    private func finish(_ result: Result<String, any Error>) {
        guard !done else { return }
        done = true
        promise.completeWith(result)
    }
}

/// A JSON string literal (the same quoting as the node's own JSON).
func jsonString(_ s: String) -> String { JSONValue.quote(s) }
