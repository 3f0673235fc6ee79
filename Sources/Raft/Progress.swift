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

    /// When (in the leader's ticks) this follower was last heard from.
    public var lastHeardTick: UInt64 = 0

    /// Leader's ticks since this follower was last heard from, at tick `now`.
    public func ticksSinceHeard(at now: UInt64) -> UInt64 { now - min(lastHeardTick, now) }
    /// For a learner to be promoted: the catch-up round under way (dissertation 4.2.1).
    public var catchUpRound: CatchUpRound?

    /// A round of replication to a learner: it must reach `target` (the leader's last index
    /// when the round began); a round that ends within an election timeout shows that the
    /// learner keeps up, however many entries arrive meanwhile.
    public struct CatchUpRound: Sendable, Hashable {
        public var target: LogIndex
        public var startedTick: UInt64
    }

    public init(next: LogIndex, now: UInt64 = 0) {
        self.next = next
        self.lastHeardTick = now
    }

    /// A snapshot being sent: which one, and how far the follower has acknowledged it.
    ///
    /// ```
    ///   offered --accepted--> sending chunks (window) --all acked--> installing --installed--> (probe)
    ///      ^  |                  |   ^                                   |
    ///      +--+ re-offered       +---+ resent from the acked offset      | polled with the last chunk
    ///         every 2 idle heartbeats  every 2 idle heartbeats           +-- "installing" keeps it alive
    /// ```
    /// An accepted transfer with neither acknowledged progress nor word that the follower is
    /// installing for `abandonAfterTicks` is abandoned (then offered again, the newest snapshot).
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
        /// The follower said it holds every byte and is installing.
        public var installing = false
        /// Heartbeats since the last acknowledgement, to resend what seems lost.
        public var idleHeartbeats = 0
        /// The tick of the last sign of progress: the offer, its acceptance, an acknowledgement
        /// that moved the offset, or word that the follower is installing.
        public var lastProgressTick: UInt64

        public init(snapshot: SnapshotMetadata, now: UInt64 = 0) {
            self.snapshot = snapshot
            self.lastProgressTick = now
        }

        /// What a heartbeat round asks of the leader for this transfer.
        public enum HeartbeatStep: Sendable, Hashable {
            case wait
            /// Send the SnapshotRequest again (it or its answer was lost).
            case offerAgain
            /// Send chunks again from the acknowledged offset (or the last chunk, to hear
            /// that the follower is still installing).
            case resend
            /// No progress and no word for too long: give it up and offer it anew.
            case abandon
        }

        mutating func accept(now: UInt64) {
            if !accepted { lastProgressTick = now }
            accepted = true
            idleHeartbeats = 0
        }

        /// The follower's answer to a chunk: where it stands.
        mutating func acknowledge(nextOffset: UInt64, installing: Bool, now: UInt64) {
            let size = snapshot.size
            if installing {
                self.installing = true
                ackedOffset = size
                sentOffset = size
                doneSent = true
                idleHeartbeats = 0
                lastProgressTick = now
            } else if nextOffset > ackedOffset {
                ackedOffset = min(nextOffset, size)
                idleHeartbeats = 0
                lastProgressTick = now
                // The follower may be further than what was sent here (a transfer offered
                // again, which it went on with): send from there, never what it holds.
                if sentOffset < ackedOffset {
                    sentOffset = ackedOffset
                    doneSent = false
                }
            } else if nextOffset < ackedOffset {
                // The follower started the file again: so does the leader.
                ackedOffset = nextOffset
                sentOffset = nextOffset
                doneSent = false
                self.installing = false
            }
        }

        /// The chunks to send now, in order, within a window of `window` chunks ahead of
        /// the acknowledged offset: (offset, length, done).
        mutating func nextChunks(chunkSize: Int, window: Int) -> [(offset: UInt64, length: Int, done: Bool)] {
            guard accepted else { return [] }
            let size = snapshot.size
            let chunk = UInt64(max(1, chunkSize))
            let limit = chunk * UInt64(max(1, window))
            // Never send what the follower holds, but for the last chunk, resent to hear
            // whether it is still installing.
            if sentOffset < ackedOffset && ackedOffset < size { sentOffset = ackedOffset }
            var out: [(UInt64, Int, Bool)] = []
            while !doneSent && (sentOffset > ackedOffset ? sentOffset - ackedOffset : 0) < limit {
                let length = min(chunk, size - sentOffset)
                let done = sentOffset + length == size
                out.append((sentOffset, Int(length), done))
                sentOffset += length
                doneSent = done
            }
            return out
        }

        /// One heartbeat round went by.
        mutating func heartbeat(now: UInt64, abandonAfterTicks: UInt64, chunkSize: Int) -> HeartbeatStep {
            idleHeartbeats += 1
            if accepted && now - lastProgressTick >= abandonAfterTicks { return .abandon }
            guard idleHeartbeats >= 2 else { return .wait }
            idleHeartbeats = 0
            guard accepted else { return .offerAgain }
            // Go back to what the follower has acknowledged; resend the last chunk if it has
            // every byte (its answer says whether it is still installing).
            let size = snapshot.size
            if ackedOffset >= size && size > 0 {
                let chunk = UInt64(max(1, chunkSize))
                sentOffset = (size - 1) / chunk * chunk
            } else {
                sentOffset = min(ackedOffset, size)
            }
            doneSent = false
            return .resend
        }
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

    mutating func becomeSnapshot(_ snapshot: SnapshotMetadata, now: UInt64) {
        state = .snapshot
        probeSent = false
        inflight.removeAll()
        transfer = SnapshotTransfer(snapshot: snapshot, now: now)
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
