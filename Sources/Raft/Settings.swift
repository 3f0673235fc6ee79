/// How a core behaves. Times are in ticks: the shell calls `tick()` at a fixed interval
/// (the node uses 10ms, so the defaults are goraft's 50ms heartbeat and 150ms election timeout).
public struct Settings: Sendable, Hashable {
    /// A follower that hears nothing from a leader for a random time in
    /// [electionTicks, 2*electionTicks) starts an election.
    public var electionTicks: Int = 15
    /// A leader sends heartbeats this often.
    public var heartbeatTicks: Int = 5
    /// goraft's MaxLogEntriesPerRequest.
    public var maxEntriesPerRequest: Int = 200
    /// A soft limit on the payload bytes of one AppendEntries (at least one entry goes).
    public var maxBytesPerRequest: Int = 4 << 20
    /// AppendEntries in flight to one follower in the replicate state.
    public var maxInflight: Int = 16
    /// Applied entries since the last snapshot that make the core ask for a new one; 0 never.
    public var snapshotThreshold: Int = 1000
    /// Once the newest snapshot holds this many bytes (of state, as the shell reports them
    /// to `snapshotTaken`, else of its file), a new snapshot also waits until the entries
    /// applied since it hold as many payload bytes; 0 never waits. A snapshot writes the
    /// whole state: every `snapshotThreshold` entries, a state of tens of MiB kept three
    /// nodes' CPUs busy compressing (issue 12). With the wait, what snapshots cost stays in
    /// proportion to what is written (the Raft dissertation, 5.1.1).
    public var snapshotAmortizeFrom: Int = 1 << 20
    /// Entries kept in the log before a new snapshot's index (goraft's
    /// NumberOfLogEntriesAfterSnapshot), so that followers a little behind get entries.
    public var snapshotTrailing: Int = 200
    /// Bytes of a SnapshotRecoveryRequest chunk.
    public var snapshotChunkSize: Int = 64 << 10
    /// Payload bytes a leader may keep in its log beyond `snapshotTrailing` after a snapshot,
    /// so that a follower that is catching up (installing a snapshot, or replicating after
    /// one) still finds the entries it needs next instead of needing another snapshot.
    public var maxRetainedBytes: Int = 64 << 20
    /// Chunks in flight during a snapshot transfer: 16 of 64 KiB keep a link busy at a
    /// round trip of several milliseconds, and bound what a transfer queues to 1 MiB.
    public var snapshotWindow: Int = 16
    /// A follower polls its peers (PreVote) before it raises its term.
    public var preVote: Bool = true
    /// A leader that has not heard from a majority within an election timeout steps down,
    /// and a node that has heard from a leader within one ignores RequestVote.
    public var checkQuorum: Bool = true
    /// Broken rules for tests that prove the simulator finds violations. Never set in production.
    public var mutations: Set<Mutation> = []

    public init() {}

    /// A rule turned off on purpose, to show that the checks catch what it prevents.
    public enum Mutation: String, Sendable, Hashable, CaseIterable {
        /// goraft's vote: the candidate's last index and last term compared separately, and
        /// the vote kept only in memory, so a restarted node may vote twice in one term.
        case goraftVote = "goraft-vote"
        /// Commit an entry of an earlier term once a majority holds it (Raft paper, figure 8).
        case commitOldTermByCounting = "commit-old-term"
        /// A configuration takes effect when committed instead of when appended, and a new
        /// leader may change the configuration before committing an entry of its own term.
        case configOnCommit = "config-on-commit"
        /// A leader answers a read (ReadIndex) at once, without a round that confirms it still
        /// leads: a deposed leader that does not know it yet reads stale state.
        case readWithoutConfirmation = "read-without-confirmation"
    }
}
