/// What a leader knows of one follower (etcd-io/raft's tracker.Progress, simplified).
///
/// ```
///            reject / heartbeat           append ok
///   +------> probe ---------------------------------> replicate
///   |          |  next entry compacted away               |
///   |          v                                          | reject
///   |       snapshot -- installed / declined --> probe <--+
///   +---- transfer failed
/// ```
/// In `probe` one AppendEntries is in flight at a time (resent each heartbeat) while the
/// leader looks for where the logs agree. In `replicate` entries stream, up to
/// `Settings.maxInflight` requests ahead. In `snapshot` the follower gets a snapshot in
/// chunks and nothing else but heartbeats.
public struct Progress: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case probe, replicate, snapshot
    }

    /// The highest index known to match the leader's log (durable on the follower).
    public var match: LogIndex = 0
    /// The next index to send.
    public var next: LogIndex
    public var state: State = .probe
    /// In probe: an AppendEntries is out; wait for its answer or the next heartbeat.
    public var probeSent = false
    /// In replicate: the last index of each AppendEntries in flight, oldest first.
    public var inflight: [LogIndex] = []
    /// Heard from since the last CheckQuorum round.
    public var recentActive = false
    /// In snapshot: the transfer under way.
    public var transfer: SnapshotTransfer?

    public init(next: LogIndex) { self.next = next }

    /// A snapshot being sent: which one, and how far the follower has acknowledged it.
    public struct SnapshotTransfer: Sendable, Hashable {
        public var snapshot: SnapshotMetadata
        /// The follower accepted the SnapshotRequest.
        public var accepted = false
        /// All bytes before this offset are acknowledged.
        public var ackedOffset: UInt64 = 0
        /// All bytes before this offset have been sent.
        public var sentOffset: UInt64 = 0
        /// The last chunk went out; waiting for the follower to install.
        public var doneSent = false
        /// Heartbeats since the last acknowledgement, to resend what seems lost.
        public var idleHeartbeats = 0
        /// Resends in a row that brought no progress.
        public var stalls = 0
        public init(snapshot: SnapshotMetadata) { self.snapshot = snapshot }
    }

    mutating func becomeProbe() {
        state = .probe
        probeSent = false
        inflight.removeAll()
        transfer = nil
        next = max(next, match + 1)
    }

    mutating func becomeReplicate() {
        state = .replicate
        probeSent = false
        inflight.removeAll()
        transfer = nil
        next = match + 1
    }

    mutating func becomeSnapshot(_ snapshot: SnapshotMetadata) {
        state = .snapshot
        probeSent = false
        inflight.removeAll()
        transfer = SnapshotTransfer(snapshot: snapshot)
    }

    /// Whether the leader should hold back new AppendEntries to this follower.
    func isPaused(maxInflight: Int) -> Bool {
        switch state {
        case .probe: probeSent
        case .replicate: inflight.count >= maxInflight
        case .snapshot: true
        }
    }

    /// Records an acknowledged match; false when it tells nothing new.
    mutating func update(match index: LogIndex) -> Bool {
        var changed = false
        if index > match {
            match = index
            changed = true
            probeSent = false
        }
        next = max(next, index + 1)
        inflight.removeAll { $0 <= index }
        return changed
    }
}
