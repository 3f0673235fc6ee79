/// Where a member listens: a UNIX socket path, or `tcp://host:port` for clusters that span
/// machines (`tcp://[::1]:7000` for an IPv6 literal). The same protocol runs over both.
public enum PeerAddress: Sendable, Hashable, CustomStringConvertible {
    case unix(path: String)
    case tcp(host: String, port: Int)

    /// The longest UNIX socket path, in UTF-8 bytes, that SwiftNIO accepts (sun_path is 108
    /// bytes on Linux, 104 on macOS, with its terminating zero).
    public static let maximumSocketPathBytes = 103

    /// Parses an address as written in flags and configurations.
    public init(parsing text: String) throws(PeerTransportError) {
        if text.hasPrefix("tcp://") {
            let rest = text.dropFirst("tcp://".count)
            let host: Substring
            let portText: Substring
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]"), rest[close...].hasPrefix("]:") else {
                    throw .badAddress(text, "expected tcp://[ipv6]:port")
                }
                host = rest[rest.index(after: rest.startIndex)..<close]
                portText = rest[rest.index(close, offsetBy: 2)...]
            } else {
                guard let colon = rest.lastIndex(of: ":") else { throw .badAddress(text, "expected tcp://host:port") }
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            }
            guard !host.isEmpty else { throw .badAddress(text, "no host") }
            guard let port = Int(portText), (0...65535).contains(port) else {
                throw .badAddress(text, "port must be a number from 0 to 65535")
            }
            self = .tcp(host: String(host), port: port)
        } else {
            guard !text.isEmpty else { throw .badAddress(text, "empty socket path") }
            guard !text.contains("://") else { throw .badAddress(text, "unknown scheme; use a socket path or tcp://host:port") }
            let bytes = text.utf8.count
            guard bytes <= Self.maximumSocketPathBytes else { throw .socketPathTooLong(text, bytes: bytes) }
            self = .unix(path: text)
        }
    }

    public var description: String {
        switch self {
        case let .unix(path): path
        case let .tcp(host, port): host.contains(":") ? "tcp://[\(host)]:\(port)" : "tcp://\(host):\(port)"
        }
    }
}

/// What `PeerTransport` throws: at start, or when parsing an address.
public enum PeerTransportError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The address is neither a socket path nor `tcp://host:port`.
    case badAddress(String, String)
    /// A UNIX socket path longer than the system (and SwiftNIO) allow.
    case socketPathTooLong(String, bytes: Int)
    /// Another process is listening on this socket path.
    case addressInUse(String)
    /// Something other than a socket is in the way of the socket path.
    case notASocket(String)
    /// Binding the listening socket failed.
    case bindFailed(String, String)
    /// `start()` was called twice, or after `shutdown()`.
    case notStartable(String)

    public var description: String {
        switch self {
        case let .badAddress(address, why): "bad peer address '\(address)': \(why)"
        case let .socketPathTooLong(path, bytes):
            "socket path is \(bytes) bytes, the limit is \(PeerAddress.maximumSocketPathBytes): \(path) (use a shorter directory)"
        case let .addressInUse(path): "another process is listening on \(path)"
        case let .notASocket(path): "\(path) exists and is not a socket; not removing it"
        case let .bindFailed(address, why): "cannot listen on \(address): \(why)"
        case let .notStartable(why): "cannot start the peer transport: \(why)"
        }
    }
}
