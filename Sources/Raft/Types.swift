// The Raft module is the protocol alone, as a deterministic state machine.
//
// `RaftCore` takes events (a tick of the clock, a message from a peer, a proposal, the
// completion of a snapshot) and answers with `Action`s: what to persist, what to send, what
// to apply, what to snapshot. It never touches a disk, a socket, a clock or a thread; the
// shell that drives it (the simulator in `RaftSimulation`, the process in `RaftNode`) does
// that, in the order the actions are given. Everything random comes from a seeded generator,
// so the same events give the same actions, which is what makes seeded simulation possible.
//
// Files, one idea each:
//   Types.swift          indices, terms, log entries, hard state, snapshot metadata
//   Configuration.swift  members, learners, addresses; the single-server change rules
//   Quorum.swift         majority arithmetic
//   Message.swift        AppendEntries, RequestVote, SnapshotRequest, SnapshotRecoveryRequest...
//   RaftLog.swift        the in-memory view of the log after the compaction point
//   Progress.swift       what a leader knows of each follower (probe, replicate, snapshot)
//   Settings.swift       timeouts in ticks, batch sizes, snapshot policy
//   Action.swift         what the core asks its shell to do, and what it reports
//   RaftCore.swift       the protocol
//   Codec.swift          a deterministic binary encoding of entries, configurations, messages
//   Random.swift, Digest.swift  a seeded generator and a stable 64-bit hash

/// A member's name, such as `n1`.
public typealias NodeID = String
/// A Raft term. Term 0 is "before any election".
public typealias Term = UInt64
/// A position in the log; the first entry has index 1, index 0 is "before the log".
public typealias LogIndex = UInt64

/// What a log entry carries.
public enum EntryType: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// A client command for the state machine (goraft's `Do(command)`).
    case command = 0
    /// goraft's NOP: appended by a new leader so that it can commit entries of earlier terms.
    case noop = 1
    /// A new configuration; the payload is a `Configuration` in `Codec` form.
    case config = 2

    public var description: String {
        switch self {
        case .command: "command"
        case .noop: "noop"
        case .config: "config"
        }
    }
}

/// One entry of the replicated log.
public struct Entry: Sendable, Hashable {
    public var index: LogIndex
    public var term: Term
    public var type: EntryType
    public var payload: [UInt8]

    public init(index: LogIndex, term: Term, type: EntryType, payload: [UInt8] = []) {
        self.index = index
        self.term = term
        self.type = type
        self.payload = payload
    }

    /// The configuration a `.config` entry carries, or nil for other entries or an unreadable payload.
    public var configuration: Configuration? {
        guard type == .config else { return nil }
        return try? Configuration(decoding: payload)
    }
}

/// What must survive a restart before any vote or message that depends on it is sent:
/// the current term and the vote cast in it (goraft kept neither on disk).
public struct HardState: Sendable, Hashable {
    public var term: Term
    public var votedFor: NodeID?
    /// The node started with no configuration (new, or wiped to be added again under its
    /// name) and has not caught up with a leader yet: it neither votes nor campaigns (see
    /// `RaftCore`). Durable, so that a crash while it catches up does not make it a voter.
    public var joining: Bool

    public init(term: Term = 0, votedFor: NodeID? = nil, joining: Bool = false) {
        self.term = term
        self.votedFor = votedFor
        self.joining = joining
    }
}

/// What identifies a snapshot: the last entry it covers, the configuration as of that entry,
/// and the size of its (compressed) file, which is what a transfer streams.
public struct SnapshotMetadata: Sendable, Hashable, CustomStringConvertible {
    public var index: LogIndex
    public var term: Term
    public var configuration: Configuration
    /// Bytes of the snapshot file as sent to a follower.
    public var size: UInt64

    public init(index: LogIndex, term: Term, configuration: Configuration, size: UInt64) {
        self.index = index
        self.term = term
        self.configuration = configuration
        self.size = size
    }

    public var description: String { "snapshot(\(index)@\(term), \(size) bytes)" }
}

/// The roles of goraft (follower, candidate, leader, snapshotting) and a learner: a
/// non-voting member. `preCandidate` is a follower polling its peers before it disrupts anyone.
public enum Role: String, Sendable, Hashable {
    case follower
    case preCandidate = "pre-candidate"
    case candidate
    case leader
    case learner
    case snapshotting
}
