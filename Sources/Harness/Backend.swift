import Raft

/// What a node says of itself (the client protocol's `status`).
public struct NodeStatus: Sendable, Hashable {
    public var name: String
    public var role: String
    public var term: UInt64
    public var leader: String?
    public var commitIndex: UInt64
    public var appliedIndex: UInt64
    public var members: [String]
    public var learners: [String]
    public var digest: String
    public var snapshotting: Bool

    public init(
        name: String, role: String, term: UInt64, leader: String?, commitIndex: UInt64, appliedIndex: UInt64,
        members: [String], learners: [String], digest: String, snapshotting: Bool
    ) {
        self.name = name
        self.role = role
        self.term = term
        self.leader = leader
        self.commitIndex = commitIndex
        self.appliedIndex = appliedIndex
        self.members = members
        self.learners = learners
        self.digest = digest
        self.snapshotting = snapshotting
    }
}

/// The answer to a write: acknowledged with its index and term, refused (with the leader
/// to try, if known), or unknown (no answer in time: it may or may not commit).
public enum WriteOutcome: Sendable, Hashable {
    case ok(index: UInt64, term: UInt64)
    case notLeader(leader: String?)
    case failed(String)
    case unknown
}

/// Node settings a scenario sets with `set`, for nodes started after it.
public struct NodeSettings: Sendable, Hashable {
    public var electionTimeoutMs = 150
    public var heartbeatMs = 50
    public var snapshotThreshold = 1000
    public var snapshotTrailing = 200
    public var snapshotChunk = 64 << 10
    public var maxEntriesPerRequest = 200

    public init() {}
}

/// How the engine acts on a cluster: processes (the product) or, later, the seeded
/// simulator. Every method may throw a message that fails the step.
public protocol ClusterBackend: AnyObject, Sendable {
    /// Starts a fresh cluster whose first configuration is exactly `names`.
    func createCluster(_ names: [String], settings: NodeSettings) async throws
    /// Starts a stopped node on its existing data.
    func start(_ name: String) async throws
    /// Starts `name` with empty data, waiting to be added; returns its peer address.
    func startJoining(_ name: String, settings: NodeSettings) async throws -> String
    /// SIGTERM, then waits for the process to exit.
    func stop(_ name: String) async throws
    func kill(_ name: String) async throws
    func pause(_ name: String) async throws
    func resume(_ name: String) async throws
    /// Deletes a stopped node's data.
    func wipe(_ name: String) async throws
    /// Cuts the links between the groups; nil heals. Every node of `all` not in a group is
    /// in one more group together.
    func partition(_ groups: [[String]]?) async throws
    func setLoss(percent: Double, delayMs: ClosedRange<Int>?) async throws

    /// Names of the nodes whose processes run (paused ones included).
    var running: [String] { get }
    var paused: Set<String> { get }
    /// Every node the back end has started.
    var known: [String] { get }

    func status(_ name: String) async -> NodeStatus?
    func put(_ name: String, key: String, value: String, timeoutMs: Int) async -> WriteOutcome
    /// A client request answered `{"ok":true,"index":N}` (snapshot, add, remove).
    func request(_ name: String, _ json: String, timeoutMs: Int) async throws -> [String: String]
    /// The events that `name` wrote since the scenario began (events.jsonl lines).
    func events(_ name: String) -> [String]

    /// Stops every process it started.
    func shutdown() async
}
