/// A message between two members. `term` is the sender's current term (for a pre-vote
/// request, the term it would campaign in).
public struct Message: Sendable, Hashable, CustomStringConvertible {
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    public var body: Body

    public init(from: NodeID, to: NodeID, term: Term, body: Body) {
        self.from = from
        self.to = to
        self.term = term
        self.body = body
    }

    public enum Body: Sendable, Hashable {
        case appendEntries(AppendEntries)
        case appendEntriesResponse(AppendEntriesResponse)
        /// The leader's "I am here", with the commit index the follower may advance to
        /// (never beyond what the leader knows the follower holds).
        case heartbeat(commitIndex: LogIndex)
        case heartbeatResponse
        /// A heartbeat that asks to be answered with its `round`: the leader confirms it still
        /// leads before it answers the reads that came before the round (ReadIndex).
        case readRound(commitIndex: LogIndex, round: UInt64)
        case readRoundResponse(round: UInt64)
        case requestVote(RequestVote)
        case requestVoteResponse(granted: Bool, preVote: Bool)
        case snapshotRequest(SnapshotMetadata)
        /// The follower's answer to a SnapshotRequest: `accepted`, or declined because it already
        /// holds the snapshot's last entry (then `lastIndex` is what it holds).
        case snapshotResponse(accepted: Bool, index: LogIndex, lastIndex: LogIndex)
        case snapshotRecoveryRequest(SnapshotRecoveryRequest)
        case snapshotRecoveryResponse(SnapshotRecoveryResponse)
        /// The leader's word to a member it removed: the configuration at `configIndex`, which
        /// leaves the receiver out, is committed. The receiver stops for good.
        case removed(configIndex: LogIndex)
    }

    public var description: String { "\(from)->\(to) t\(term) \(body)" }
}

/// Replicates entries after (`prevLogIndex`, `prevLogTerm`); empty `entries` probe the log.
public struct AppendEntries: Sendable, Hashable {
    public var prevLogIndex: LogIndex
    public var prevLogTerm: Term
    public var entries: [Entry]
    public var commitIndex: LogIndex

    public init(prevLogIndex: LogIndex, prevLogTerm: Term, entries: [Entry], commitIndex: LogIndex) {
        self.prevLogIndex = prevLogIndex
        self.prevLogTerm = prevLogTerm
        self.entries = entries
        self.commitIndex = commitIndex
    }
}

public struct AppendEntriesResponse: Sendable, Hashable {
    public var success: Bool
    /// On success, the index the follower's log now matches the leader's up to.
    /// On failure, the `prevLogIndex` of the request that failed.
    public var index: LogIndex
    /// On failure, where the leader should try next: the follower's last index + 1 when
    /// its log is shorter, else the first index of the conflicting term (`hintTerm`).
    public var hintIndex: LogIndex
    public var hintTerm: Term
    /// The follower's last log index.
    public var lastIndex: LogIndex

    public init(success: Bool, index: LogIndex, hintIndex: LogIndex = 0, hintTerm: Term = 0, lastIndex: LogIndex) {
        self.success = success
        self.index = index
        self.hintIndex = hintIndex
        self.hintTerm = hintTerm
        self.lastIndex = lastIndex
    }
}

public struct RequestVote: Sendable, Hashable {
    public var lastLogIndex: LogIndex
    public var lastLogTerm: Term
    /// A PreVote poll: granting it changes nothing on the voter.
    public var preVote: Bool

    public init(lastLogIndex: LogIndex, lastLogTerm: Term, preVote: Bool) {
        self.lastLogIndex = lastLogIndex
        self.lastLogTerm = lastLogTerm
        self.preVote = preVote
    }
}

/// One chunk of a snapshot file, in order; `done` on the last.
public struct SnapshotRecoveryRequest: Sendable, Hashable {
    public var index: LogIndex
    public var snapshotTerm: Term
    public var offset: UInt64
    public var data: [UInt8]
    public var done: Bool

    public init(index: LogIndex, snapshotTerm: Term, offset: UInt64, data: [UInt8], done: Bool) {
        self.index = index
        self.snapshotTerm = snapshotTerm
        self.offset = offset
        self.data = data
        self.done = done
    }
}

public struct SnapshotRecoveryResponse: Sendable, Hashable {
    public var index: LogIndex
    public var snapshotTerm: Term
    /// The offset the follower expects next (all before it are written).
    public var nextOffset: UInt64
    /// The snapshot is installed: the follower's log now starts after `index`.
    public var installed: Bool
    /// False when the follower is not receiving this snapshot (any more): start over.
    public var success: Bool
    /// The follower holds every byte of this snapshot and is installing it (checking,
    /// making it durable, restoring the state: seconds for a large one). Said in every
    /// answer until the install ends, so that the leader waits rather than starts over.
    public var installing: Bool

    public init(index: LogIndex, snapshotTerm: Term, nextOffset: UInt64, installed: Bool, success: Bool, installing: Bool = false) {
        self.index = index
        self.snapshotTerm = snapshotTerm
        self.nextOffset = nextOffset
        self.installed = installed
        self.success = success
        self.installing = installing
    }
}

extension Message.Body {
    /// The message's kind, as the Raft paper and goraft name it.
    public var kindName: String {
        switch self {
        case .appendEntries: "AppendEntries"
        case .appendEntriesResponse: "AppendEntriesResponse"
        case .heartbeat: "Heartbeat"
        case .heartbeatResponse: "HeartbeatResponse"
        case .readRound: "ReadRound"
        case .readRoundResponse: "ReadRoundResponse"
        case let .requestVote(v): v.preVote ? "PreVote" : "RequestVote"
        case let .requestVoteResponse(_, p): p ? "PreVoteResponse" : "RequestVoteResponse"
        case .snapshotRequest: "SnapshotRequest"
        case .snapshotResponse: "SnapshotResponse"
        case .snapshotRecoveryRequest: "SnapshotRecoveryRequest"
        case .snapshotRecoveryResponse: "SnapshotRecoveryResponse"
        case .removed: "Removed"
        }
    }
}

extension Message.Body: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .appendEntries(a):
            "AppendEntries(prev \(a.prevLogIndex)@\(a.prevLogTerm), \(a.entries.count) entries, commit \(a.commitIndex))"
        case let .appendEntriesResponse(r):
            "AppendEntriesResponse(\(r.success ? "ok" : "reject") \(r.index), hint \(r.hintIndex)@\(r.hintTerm), last \(r.lastIndex))"
        case let .heartbeat(c): "Heartbeat(commit \(c))"
        case .heartbeatResponse: "HeartbeatResponse"
        case let .readRound(c, r): "ReadRound(commit \(c), round \(r))"
        case let .readRoundResponse(r): "ReadRoundResponse(round \(r))"
        case let .requestVote(v): "\(v.preVote ? "PreVote" : "RequestVote")(last \(v.lastLogIndex)@\(v.lastLogTerm))"
        case let .requestVoteResponse(g, p): "\(p ? "PreVote" : "RequestVote")Response(\(g ? "granted" : "denied"))"
        case let .snapshotRequest(m): "SnapshotRequest(\(m))"
        case let .snapshotResponse(a, i, l): "SnapshotResponse(\(a ? "accepted" : "declined") \(i), last \(l))"
        case let .snapshotRecoveryRequest(c): "SnapshotRecoveryRequest(\(c.index)@\(c.snapshotTerm) offset \(c.offset), \(c.data.count) bytes\(c.done ? ", done" : ""))"
        case let .snapshotRecoveryResponse(r):
            "SnapshotRecoveryResponse(\(r.index) next \(r.nextOffset)\(r.installed ? ", installed" : "")\(r.installing ? ", installing" : "")\(r.success ? "" : ", failed"))"
        case let .removed(i): "Removed(config \(i))"
        }
    }
}
