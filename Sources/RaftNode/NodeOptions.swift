import Raft

/// What a node is started with.
public struct NodeOptions: Sendable {
    public var name: NodeID
    public var dataDir: String
    /// Where peers reach this node: a UNIX socket path or `tcp://host:port`.
    public var peerAddress: String
    /// The client socket (SPEC section 5); `client.sock` in the data dir by default.
    public var clientSocket: String
    public var clusterID: String = "raft-testbed"
    /// The first configuration of a new cluster (name -> peer address), used when the data
    /// dir is empty and `join` is off. With `join`, only where to reach the current members.
    public var initialMembers: [NodeID: String] = [:]
    /// Start with no configuration and wait to be added.
    public var join = false
    public var settings = Settings()
    /// Milliseconds of one tick of the core's clock.
    public var tickMs: Int = 10
    /// A client request not answered in this many milliseconds is answered `timeout`.
    public var requestTimeoutMs: Int = 10_000
    /// Exit when standard input closes (a supervising parent died).
    public var exitOnStdinClose = false

    public init(name: NodeID, dataDir: String, peerAddress: String, clientSocket: String) {
        self.name = name
        self.dataDir = dataDir
        self.peerAddress = peerAddress
        self.clientSocket = clientSocket
    }

    /// Sets the core's timeouts from milliseconds: a tick of 10ms (less for heartbeats under
    /// 50ms), an election timeout of `electionMs` (randomised up to twice that) and a
    /// heartbeat of `heartbeatMs`.
    public mutating func setTimes(electionMs: Int, heartbeatMs: Int) {
        tickMs = max(1, min(10, heartbeatMs / 5))
        settings.electionTicks = max(2, electionMs / tickMs)
        settings.heartbeatTicks = max(1, heartbeatMs / tickMs)
    }
}
