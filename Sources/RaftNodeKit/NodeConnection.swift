import Foundation
import Raft
import RaftNodeWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What became of one request (SPEC section 5).
public enum ClientReply: Sendable, Hashable {
    /// The node's answer.
    case answer(ClientAnswer)
    /// Nothing was sent: the socket is missing or refused the connection.
    case notSent(String)
    /// Sent, but no answer came (the node died, closed the connection, or the time ran out).
    case noAnswer(String)
    /// A line came that is not an answer of SPEC section 5.
    case unreadable(String)
}

/// A failure of the socket itself.
public struct ConnectionError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// Nothing was sent on this connection yet (connecting failed).
    public var beforeSending: Bool
    /// The time limit ran out (nothing came, or nothing could be written).
    public var timedOut = false
}

/// One connection to a node's client socket: blocking, with a time limit on each read and
/// write; requests and answers are lines (SPEC section 5).
public final class NodeConnection {
    private var fd: Int32
    /// Bytes read and not yet taken: `buffer[start..<end]`.
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0
    private var end = 0
    public let path: String

    public init(path: String, timeoutMs: Int) throws(ConnectionError) {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ConnectionError(description: "socket(): \(String(cString: strerror(errno)))", beforeSending: true) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else {
            close()
            throw ConnectionError(description: "socket path \(path) is \(bytes.count) bytes; UNIX sockets allow 103", beforeSending: true)
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let fd = self.fd
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let e = errno
            close()
            throw ConnectionError(description: "cannot connect to \(path): \(String(cString: strerror(e)))", beforeSending: true)
        }
        setTimeout(ms: timeoutMs)
    }

    deinit { close() }

    /// The time limit of each later read and write.
    public func setTimeout(ms: Int) {
        let ms = max(1, ms)
        var tv = timeval(tv_sec: ms / 1000, tv_usec: __suseconds_t((ms % 1000) * 1000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    public func close() {
        if fd >= 0 { _ = systemClose(fd) }
        fd = -1
    }

    /// Writes all of `bytes` (MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE).
    public func write(_ bytes: [UInt8]) throws(ConnectionError) {
        var sent = 0
        while sent < bytes.count {
            let fd = self.fd
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ConnectionError(description: "send to \(path): \(String(cString: strerror(errno)))", beforeSending: false) }
            sent += n
        }
    }

    public func writeLine(_ line: String) throws(ConnectionError) { try write(Array((line + "\n").utf8)) }

    /// Reads what is there (blocking until something is, or the time limit); nil at EOF.
    public func readSome() throws(ConnectionError) -> [UInt8]? {
        if start >= end {
            guard try fill() else { return nil }
        }
        defer { start = end }
        return Array(buffer[start..<end])
    }

    /// Reads into the empty buffer; false at EOF.
    private func fill() throws(ConnectionError) -> Bool {
        start = 0
        end = 0
        while true {
            let fd = self.fd
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                let late = errno == EAGAIN || errno == EWOULDBLOCK
                let what = late ? "no answer from \(path) in time" : "recv from \(path): \(String(cString: strerror(errno)))"
                throw ConnectionError(description: what, beforeSending: false, timedOut: late)
            }
            end = n
            return n > 0
        }
    }

    /// The next line's bytes, without its newline.
    public func readLineBytes() throws(ConnectionError) -> [UInt8] {
        var line: [UInt8] = []
        while true {
            if let nl = buffer[start..<end].firstIndex(of: 0x0a) {
                line += buffer[start..<nl]
                start = nl + 1
                return line
            }
            line += buffer[start..<end]
            guard try fill() else { throw ConnectionError(description: "\(path) closed the connection", beforeSending: false) }
        }
    }

    /// The next line, without its newline.
    public func readLine() throws(ConnectionError) -> String {
        String(decoding: try readLineBytes(), as: UTF8.self)
    }

    /// Sends `op` and reads its answer (the first line).
    public func call(_ op: ClientOp, id: Int64 = 1) -> ClientReply {
        do {
            try writeLine(op.line(id: .int(id)))
        } catch {
            return .noAnswer(error.description)
        }
        let line: String
        do {
            line = try readLine()
        } catch {
            return .noAnswer(error.description)
        }
        guard let answer = ClientAnswer(parsing: line, for: op) else { return .unreadable(line) }
        return .answer(answer)
    }

    // MARK: One request, one connection

    /// Connects, sends `op`, reads the answer, closes; at most `timeoutMs` for each part.
    public static func request(_ op: ClientOp, to path: String, timeoutMs: Int) -> ClientReply {
        let c: NodeConnection
        do {
            c = try NodeConnection(path: path, timeoutMs: timeoutMs)
        } catch {
            return .notSent(error.description)
        }
        defer { c.close() }
        return c.call(op)
    }

    /// The same from async code: the blocking call runs on a thread of its own, so that no
    /// thread of the cooperative pool waits on a socket. Not on a concurrent dispatch queue:
    /// on Linux that shares the pool's few threads, and while other work held them (the test
    /// suite's CPU-bound tests at its start) a node's status request waited past its
    /// deadline without being sent (CI failed three times).
    public static func request(_ op: ClientOp, to path: String, timeoutMs: Int) async -> ClientReply {
        await withCheckedContinuation { (c: CheckedContinuation<ClientReply, Never>) in
            let thread = Thread { c.resume(returning: request(op, to: path, timeoutMs: timeoutMs)) }
            thread.stackSize = 256 << 10
            thread.start()
        }
    }
}

private func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
        Glibc.close(fd)
    #else
        Darwin.close(fd)
    #endif
}
