/// What a core asks of its shell. The shell carries actions out in the order given, and
/// makes every persisting action (`saveHardState`, `appendLog`, `truncateLog`) durable before
/// it carries out any later action that is not one: a vote or an acknowledgement never leaves
/// before what it promises is on disk. Consecutive persisting actions may share one fsync.
///
/// One exception (RaftNodeMachine's `CarryOutPlan`): when only appends wait for the sync, a
/// leader's AppendEntries whose commit index is below the first entry not yet synced may be
/// sent once those appends are written, before their sync, so that the followers write the
/// entries while the leader syncs them (the Raft dissertation, 10.2.1). It promises nothing
/// of the leader's disk, and tells no one of a commit that counted an unsynced entry. The
/// shell must still finish that sync before it gives the core its next input: the core
/// counts the leader's own log in the commit quorum, and the answers that let it commit
/// come as inputs.
public enum Action: Sendable, Hashable {
    /// Make the term and vote durable.
    case saveHardState(HardState)
    /// Append these entries to the durable log. The first one's index is at most one past the
    /// durable last index; any durable entries from that index on are replaced.
    case appendLog([Entry])
    /// Remove the durable entries from this index on.
    case truncateLog(from: LogIndex)
    /// The entries up to `through` are covered by a durable snapshot and may be discarded;
    /// `term` is the term of the entry at `through`. May be past the log's end.
    case compactLog(through: LogIndex, term: Term)
    /// Send a message to a peer (best effort; the protocol survives its loss).
    case send(Message)
    /// Read `length` bytes at `offset` from the file of `snapshot` and send them to `to` as
    /// `SnapshotRecoveryRequest(index, snapshotTerm, offset, data, done)` in term `term`.
    case sendSnapshotChunk(to: NodeID, term: Term, snapshot: SnapshotMetadata, offset: UInt64, length: Int, done: Bool)
    /// Apply committed entries to the state machine, in order. Commands change the state;
    /// NOPs and configurations only move the applied index.
    case apply([Entry])
    /// Take a snapshot of the state machine as it is now (applied through `index`), then call
    /// `snapshotTaken` (or `snapshotFailed`).
    case takeSnapshot(index: LogIndex, term: Term, configuration: Configuration)
    /// Start receiving `snapshot` from the leader into a temporary file, discarding any earlier one.
    case beginSnapshotReceive(from: NodeID, snapshot: SnapshotMetadata)
    /// Write a chunk of the snapshot being received at `offset` of the temporary file.
    case writeSnapshotChunk(snapshot: SnapshotMetadata, offset: UInt64, data: [UInt8])
    /// Every chunk is written: check the file, make it durable under its final name, restore
    /// the state machine from it, then call `snapshotInstalled` (or `snapshotFailed`).
    case installSnapshot(SnapshotMetadata)
    /// Discard the snapshot being received.
    case abortSnapshotReceive(SnapshotMetadata)
    /// Something worth recording (events.jsonl, node.log); changes nothing.
    case observe(Observation)
    /// The read `id` (`RaftCore.readIndex`) may be answered from the state applied through
    /// `index`, or any later state: a majority confirmed this node led after it came.
    case readReady(id: UInt64, index: LogIndex)
    /// The read `id` cannot be answered here: this node stopped leading first (no state
    /// changed: the client may ask the next leader).
    case readFailed(id: UInt64)
}

/// What a core reports of itself, for the events file and the logs.
public enum Observation: Sendable, Hashable {
    /// The node's role or leader changed, in `term` (the term when it happened: a shell that
    /// writes observations after a batch of steps may be in a later one by then).
    case role(Role, leader: NodeID?, term: Term)
    case vote(for: NodeID, term: Term)
    /// A conflicting suffix of the log, from `from` on, was removed (never a committed entry).
    case truncate(from: LogIndex)
    /// The log through `through` was dropped because a snapshot covers it: after a take, or
    /// when an installed snapshot replaces the log.
    case compact(through: LogIndex)
    case commit(LogIndex)
    case config(index: LogIndex, Configuration, committed: Bool)
    /// A leader started sending a snapshot to a follower.
    case snapshotSendStarted(to: NodeID, SnapshotMetadata)
    /// The follower installed the snapshot the leader sent.
    case snapshotSent(to: NodeID, SnapshotMetadata)
    /// The leader gave up a transfer that made no progress, with the follower's
    /// acknowledged `offset`; it offers the newest snapshot again.
    case snapshotAbandoned(to: NodeID, SnapshotMetadata, offset: UInt64, reason: String)
    /// The follower installed a snapshot from `from`.
    case snapshotInstalled(from: NodeID, SnapshotMetadata)
    /// This node's removal from the configuration is committed; its shell should stop it.
    case removed
    /// Bad input from a peer or a refused request.
    case error(what: String, detail: String)
}
