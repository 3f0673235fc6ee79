import Raft
import Testing

/// Raft paper §7 (log compaction) and goraft's SnapshotRequest / SnapshotRecoveryRequest.
@Suite("Snapshots (§7)")
struct SnapshotTests {
    /// A snapshot every 10 applied entries, 2 trailing entries kept, files of 1,000 bytes
    /// sent 100 bytes a chunk, 3 chunks in flight.
    static let settings = Settings.test {
        $0.snapshotThreshold = 10
        $0.snapshotTrailing = 2
        $0.snapshotChunkSize = 100
        $0.snapshotWindow = 3
    }

    /// n1 leads; n3 was cut off (long enough for n1 to stop keeping entries for it) while
    /// 25 commands were committed one by one, so n1's log now starts past n3's next entry.
    /// The link is healed; nothing is queued.
    private func laggingFollower() -> TestCluster {
        let cluster = TestCluster(settings: Self.settings)
        cluster.elect("n1")
        cluster.isolate("n3")
        cluster.heartbeat("n1", rounds: 2 * Self.settings.electionTicks / Self.settings.heartbeatTicks + 1)
        for i in 0..<25 {
            _ = cluster.propose("n1", "c\(i)")
            cluster.deliverAll()
        }
        cluster.heal()
        return cluster
    }

    /// Runs n1's heartbeat until its SnapshotRequest to n3 is queued (not delivered).
    private func startTransfer(_ cluster: TestCluster) throws -> SnapshotMetadata {
        for _ in 0..<5 {
            cluster.tick("n1", times: Self.settings.heartbeatTicks)
            cluster.deliver(where: { $0.snapshotRequest == nil && $0.chunk == nil })
            if let m = cluster.queued(where: { $0.snapshotRequest != nil }).first { return m.snapshotRequest! }
        }
        return try #require(nil as SnapshotMetadata?, "no SnapshotRequest to n3")
    }

    private func chunkActions(_ cluster: TestCluster, to: NodeID) -> [(offset: UInt64, length: Int, done: Bool)] {
        cluster.node("n1").history.compactMap {
            if case let .sendSnapshotChunk(peer, _, _, offset, length, done) = $0, peer == to { return (offset, length, done) }
            return nil
        }
    }

    // MARK: Taking snapshots

    @Test func passingSnapshotThresholdTakesSnapshotAtAppliedIndex() {
        let cluster = TestCluster(settings: Self.settings)
        cluster.elect("n1")  // the NOP is entry 1
        cluster.configure("n1") { $0.autoSnapshot = false }
        var asked: [LogIndex] = []
        for i in 0..<9 {
            _ = cluster.propose("n1", "c\(i)")
            cluster.deliverAll()
            asked += cluster.node("n1").history.compactMap {
                if case let .takeSnapshot(index, _, _) = $0 { return index }
                return nil
            }.filter { !asked.contains($0) }
            #expect(asked.isEmpty == (cluster["n1"].appliedIndex < 10))
        }
        #expect(asked == [10])
        #expect(cluster.node("n1").pendingSnapshot?.term == 1)
    }

    @Test(
        "Once the newest snapshot file is snapshotAmortizeFrom bytes or more, the next waits past the threshold until the entries applied since hold as many payload bytes as that file",
        arguments: [(1000, [10, 30]), (1001, [10, 20, 30])])
    func largeSnapshotsWaitForAsManyBytesApplied(amortizeFrom: Int, taken: [LogIndex]) {
        // The test cluster's snapshot files are 1,000 bytes; commands here are 50 bytes.
        var settings = Self.settings
        settings.snapshotAmortizeFrom = amortizeFrom
        let cluster = TestCluster(settings: settings)
        cluster.elect("n1")  // the NOP is entry 1
        var snapshots: [LogIndex] = []
        for i in 0..<29 {
            _ = cluster.propose("n1", String(repeating: "\(i % 10)", count: 50))
            cluster.deliverAll()
            if let s = cluster["n1"].snapshot?.index, s > 0, s != snapshots.last { snapshots.append(s) }
        }
        // The first at 10 (no file before it); at 20 only 500 bytes were applied since.
        #expect(snapshots == taken)
    }

    @Test func snapshotTakenCompactsLogKeepingTrailingEntries() {
        let cluster = TestCluster(settings: Self.settings)
        cluster.elect("n1")
        for i in 0..<9 {
            _ = cluster.propose("n1", "c\(i)")
            cluster.deliverAll()
        }
        #expect(cluster["n1"].snapshot?.index == 10)
        #expect(cluster.node("n1").history.contains(.compactLog(through: 8, term: 1)))
        #expect(cluster["n1"].log.prevIndex == 8)
        #expect(cluster["n1"].log.entries.map(\.index) == [9, 10])
        // The shell's disk did the same.
        #expect(cluster.node("n1").log == cluster["n1"].log)
    }

    @Test(arguments: [64 << 20, 10])
    func leaderKeepsTheEntriesALiveFollowerNeedsUpToABound(maxRetainedBytes: Int) {
        var settings = Self.settings
        settings.maxRetainedBytes = maxRetainedBytes
        let cluster = TestCluster(settings: settings)
        cluster.elect("n1")
        let match = cluster["n1"].progress["n3"]!.match
        // n3 answers heartbeats but its entries are lost: it is alive and behind.
        for i in 0..<25 {
            _ = cluster.propose("n1", "c\(i)")
            _ = cluster.drop(where: { $0.to == "n3" && $0.appendEntries != nil })
            cluster.deliverAll()
        }
        #expect((cluster["n1"].snapshot?.index ?? 0) >= 20)
        if maxRetainedBytes > 1000 {
            #expect(cluster["n1"].log.prevIndex <= match, "compacted past what n3 needs next")
            cluster.heartbeat("n1", rounds: 3)
            #expect(cluster["n3"].log.lastIndex == cluster["n1"].log.lastIndex)
            #expect(cluster.messagesSent(where: { $0.to == "n3" && $0.snapshotRequest != nil }).isEmpty)
        } else {
            // Over the bound, the log is compacted as usual and n3 gets a snapshot.
            #expect(cluster["n1"].log.prevIndex > match)
            cluster.heartbeat("n1", rounds: 5)
            #expect(cluster["n3"].snapshot == cluster["n1"].snapshot)
        }
    }

    @Test func requestSnapshotAsksForSnapshotOfAppliedState() {
        let cluster = TestCluster(settings: Self.settings)
        cluster.elect("n1")
        _ = cluster.propose("n1", "x")
        cluster.deliverAll()
        let applied = cluster["n1"].appliedIndex
        #expect(cluster.requestSnapshot("n1") == applied)
        #expect(cluster["n1"].snapshot?.index == applied)
    }

    // MARK: Sending snapshots

    @Test func followerWhoseNextEntryIsCompactedGetsSnapshotRequest() throws {
        let cluster = laggingFollower()
        #expect(cluster["n1"].log.prevIndex > cluster["n3"].log.lastIndex)
        let meta = try startTransfer(cluster)
        #expect(meta == cluster["n1"].snapshot)
        #expect(cluster["n1"].progress["n3"]?.state == .snapshot)
        #expect(cluster.node("n1").observations.contains(.snapshotSendStarted(to: "n3", meta)))
    }

    @Test func followerHoldingSnapshotLastEntryDeclinesAndKeepsEntriesAfterIt() {
        // Raft paper §7: the entries after a snapshot's last entry are kept when they match.
        let cluster = TestCluster(states: ["n2": state(voters: ["n1", "n2", "n3"], term: 1, log: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1])])
        let log = cluster["n2"].log
        let meta = SnapshotMetadata(index: 8, term: 1, configuration: Configuration(voters: ["n1", "n2", "n3"]), size: 1000)
        let actions = cluster.step(Message(from: "n1", to: "n2", term: 1, body: .snapshotRequest(meta)))
        let answers = actions.messages.compactMap(\.snapshotResponse)
        #expect(answers.count == 1)
        #expect(answers.first?.accepted == false)
        #expect(answers.first?.index == 8)
        #expect(answers.first?.lastIndex == 10)
        #expect(cluster["n2"].log == log)
        #expect(cluster["n2"].role == .follower)
        #expect(!actions.contains { if case .beginSnapshotReceive = $0 { true } else { false } })
    }

    @Test func chunksCarryOffsetsAndDoneWithAtMostWindowInFlight() throws {
        let cluster = laggingFollower()
        let meta = try startTransfer(cluster)
        cluster.deliverOne(where: { $0.snapshotRequest != nil })
        cluster.deliverOne(where: { $0.snapshotResponse != nil })
        // Accepted: a window of chunks goes at once.
        #expect(chunkActions(cluster, to: "n3").map(\.offset) == [0, 100, 200])
        var steps = 0
        while !cluster.queued().isEmpty && steps < 1000 {
            cluster.deliverOne(where: { _ in true })
            steps += 1
            if let t = cluster["n1"].progress["n3"]?.transfer {
                #expect(t.sentOffset - min(t.sentOffset, t.ackedOffset) <= 3 * 100)
            }
        }
        let chunks = chunkActions(cluster, to: "n3")
        #expect(chunks.map(\.offset) == (0..<10).map { UInt64($0 * 100) })
        #expect(chunks.allSatisfy { $0.length == 100 })
        #expect(chunks.map(\.done) == Array(repeating: false, count: 9) + [true])
        #expect(cluster["n3"].snapshot == meta)
    }

    @Test func installedSnapshotIsAnsweredAndLeaderGoesBackToReplicating() throws {
        let cluster = laggingFollower()
        let meta = try startTransfer(cluster)
        cluster.deliverAll()
        #expect(cluster["n3"].snapshot == meta)
        #expect(cluster.messagesSent { $0.from == "n3" && $0.chunkResponse?.installed == true }.count == 1)
        #expect(cluster.node("n3").observations.contains(.snapshotInstalled(from: "n1", meta)))
        #expect(cluster.node("n1").observations.contains(.snapshotSent(to: "n3", meta)))
        #expect(cluster["n1"].progress["n3"]?.state == .replicate)
        #expect(cluster["n1"].progress["n3"]?.match == cluster["n1"].log.lastIndex)
        #expect(cluster["n3"].log.lastIndex == cluster["n1"].log.lastIndex)
        #expect(cluster["n3"].role == .follower)
        // And it goes on replicating.
        _ = cluster.propose("n1", "after")
        cluster.deliverAll()
        #expect(cluster["n3"].log.lastIndex == cluster["n1"].log.lastIndex)
    }

    @Test func heartbeatsContinueToFollowerDuringTransfer() throws {
        let cluster = laggingFollower()
        _ = try startTransfer(cluster)
        cluster.deliverOne(where: { $0.snapshotRequest != nil })
        cluster.deliverOne(where: { $0.snapshotResponse != nil })
        cluster.drop(where: { $0.to == "n3" })
        cluster.tick("n1", times: Self.settings.heartbeatTicks)
        #expect(cluster["n1"].progress["n3"]?.state == .snapshot)
        #expect(cluster.queued(where: { $0.to == "n3" && $0.isHeartbeat }).count == 1)
    }

    /// Ticks after which a transfer with no progress and no word of an install is given up.
    static let patience = 4 * Self.settings.electionTicks

    @Test func stalledTransferIsResentThenAbandonedAfterFourElectionTimeouts() throws {
        let cluster = laggingFollower()
        let meta = try startTransfer(cluster)
        cluster.deliverOne(where: { $0.snapshotRequest != nil })
        cluster.deliverOne(where: { $0.snapshotResponse != nil })
        // Every chunk is lost.
        var ticks = 0
        while cluster.messagesSent(where: { $0.to == "n3" && $0.snapshotRequest != nil }).count < 2 && ticks < 10 * Self.patience {
            cluster.drop(where: { $0.chunk != nil })
            cluster.tick("n1", times: Self.settings.heartbeatTicks)
            ticks += Self.settings.heartbeatTicks
            cluster.deliver(where: { $0.chunk == nil })
        }
        // Resent from the last acknowledged offset (0) meanwhile, and given up only once four
        // election timeouts passed with no progress, with an account of where it stood.
        #expect(chunkActions(cluster, to: "n3").filter { $0.offset == 0 }.count >= 2)
        #expect(ticks >= Self.patience && ticks < Self.patience + 2 * Self.settings.heartbeatTicks)
        #expect(cluster.messagesSent(where: { $0.to == "n3" && $0.snapshotRequest != nil }).count == 2)
        #expect(cluster.node("n1").observations.filter {
            if case let .snapshotAbandoned(to, m, offset, _) = $0 { return to == "n3" && m == meta && offset == 0 }
            return false
        }.count == 1)
        #expect(cluster.node("n1").observations.filter { $0 == .snapshotSendStarted(to: "n3", meta) }.count == 2)
        // Once the network behaves the transfer completes.
        cluster.heartbeat("n1", rounds: 5)
        #expect(cluster["n3"].snapshot == meta)
    }

    @Test func installThatOutlastsFourElectionTimeoutsIsWaitedForUnderSteadyWrites() throws {
        let cluster = laggingFollower()
        cluster.configure("n3") { $0.autoInstall = false }
        let meta = try startTransfer(cluster)
        cluster.deliverAll()
        #expect(cluster.node("n3").pendingInstall == meta)
        // The install takes ten election timeouts; writes go on and the leader snapshots anew.
        for i in 0..<(10 * Self.settings.electionTicks / Self.settings.heartbeatTicks) {
            _ = cluster.propose("n1", "w\(i)")
            cluster.heartbeat("n1")
        }
        #expect((cluster["n1"].snapshot?.index ?? 0) > meta.index, "the leader has a newer snapshot")
        #expect(cluster.messagesSent(where: { $0.to == "n3" && $0.snapshotRequest != nil }).count == 1, "offered once")
        #expect(!cluster.node("n1").observations.contains { if case .snapshotAbandoned = $0 { return true } else { return false } })
        #expect(cluster["n1"].progress["n3"]?.transfer?.installing == true)
        // Meanwhile the leader kept the entries after the snapshot being installed.
        #expect(cluster["n1"].log.prevIndex <= meta.index)
        cluster.finishInstall("n3")
        cluster.deliverAll()
        cluster.heartbeat("n1", rounds: 3)
        #expect(cluster.messagesSent(where: { $0.to == "n3" && $0.snapshotRequest != nil }).count == 1, "caught up by entries, with no second snapshot")
        #expect(cluster.node("n3").observations.filter { if case .snapshotInstalled = $0 { return true } else { return false } }.count == 1)
        #expect(cluster["n3"].log.lastIndex == cluster["n1"].log.lastIndex)
        #expect(cluster["n1"].progress["n3"]?.state == .replicate)
    }

    @Test func installedAnswerToAnEarlierOfferEndsTheNewerOffer() throws {
        let cluster = laggingFollower()
        cluster.configure("n3") { $0.autoInstall = false }
        let meta = try startTransfer(cluster)
        cluster.deliverAll()
        #expect(cluster.node("n3").pendingInstall == meta)
        // n3's answers are lost for longer than the leader waits: it gives the transfer up and
        // offers its newest snapshot, which n3, still installing, cannot take.
        cluster.cutLink(from: "n3", to: "n1")
        for i in 0..<(Self.patience / Self.settings.heartbeatTicks + 2) {
            _ = cluster.propose("n1", "w\(i)")
            cluster.heartbeat("n1")
        }
        cluster.heal()
        #expect(cluster.node("n1").observations.contains { if case .snapshotAbandoned = $0 { return true } else { return false } })
        let newer = try #require(cluster["n1"].progress["n3"]?.transfer?.snapshot)
        #expect(newer.index > meta.index)
        cluster.heartbeat("n1", rounds: 2)
        #expect(cluster.messagesSent(where: { $0.from == "n3" && $0.chunkResponse?.installing == true }).count >= 1)
        // Its install of the earlier one ends: the leader takes that answer (and goes on from
        // there: the entries after it are compacted away by now, so with the newest snapshot).
        #expect((cluster["n1"].progress["n3"]?.match ?? 0) < meta.index)
        cluster.finishInstall("n3")
        cluster.deliverOne(where: { $0.from == "n3" && $0.chunkResponse?.installed == true })
        #expect((cluster["n1"].progress["n3"]?.match ?? 0) >= meta.index)
        cluster.configure("n3") { $0.autoInstall = true }
        cluster.heartbeat("n1", rounds: 5)
        #expect(cluster["n3"].log.lastIndex == cluster["n1"].log.lastIndex)
    }

    @Test func transferOfferedAgainGoesOnFromTheFollowersOffsetAWindowAtATime() throws {
        let cluster = laggingFollower()
        let meta = try startTransfer(cluster)
        cluster.deliverOne(where: { $0.snapshotRequest != nil })
        cluster.deliverOne(where: { $0.snapshotResponse != nil })
        // Half the file arrives; then n3's answers are lost until the leader offers it again.
        for _ in 0..<100 where (cluster.node("n3").receiving?.bytes.count ?? 0) < Int(meta.size) / 2 {
            cluster.deliverOne(where: { $0.chunk != nil || $0.chunkResponse != nil })
        }
        #expect((cluster.node("n3").receiving?.bytes.count ?? 0) >= Int(meta.size) / 2)
        cluster.cutLink(from: "n3", to: "n1")
        cluster.drop(where: { _ in true })
        for _ in 0..<(Self.patience / Self.settings.heartbeatTicks + 1) {
            cluster.tick("n1", times: Self.settings.heartbeatTicks)
            cluster.drop(where: { $0.chunk != nil })
            cluster.deliverAll()
        }
        cluster.heal()
        #expect(cluster.node("n1").observations.contains { if case .snapshotAbandoned = $0 { return true } else { return false } })
        let held = cluster.node("n3").receiving?.bytes.count ?? 0
        #expect(held >= Int(meta.size) / 2, "n3 goes on with the same file")
        // Whatever it answers, the leader never has more than a window of chunks out.
        var most = 0
        for _ in 0..<200 where cluster["n3"].snapshot != meta {
            let before = chunkActions(cluster, to: "n3").count
            if cluster.queued().isEmpty { cluster.tick("n1", times: Self.settings.heartbeatTicks) } else { cluster.deliverOne(where: { _ in true }) }
            most = max(most, chunkActions(cluster, to: "n3").count - before)
        }
        #expect(cluster["n3"].snapshot == meta)
        #expect(most <= Self.settings.snapshotWindow, "at most \(Self.settings.snapshotWindow) chunks sent in one step, saw \(most)")
    }

    @Test func followerRestartedDuringTransferGetsTheSnapshotAfresh() throws {
        let cluster = laggingFollower()
        let meta = try startTransfer(cluster)
        cluster.deliverOne(where: { $0.snapshotRequest != nil })
        cluster.deliverOne(where: { $0.snapshotResponse != nil })
        cluster.deliverOne(where: { $0.chunk != nil })
        cluster.restart("n3")
        #expect(!cluster["n3"].isReceivingSnapshot)
        cluster.deliverAll()
        cluster.heartbeat("n1", rounds: 10)
        #expect(cluster["n3"].snapshot == meta)
        #expect(cluster.messagesSent(where: { $0.to == "n3" && $0.snapshotRequest != nil }).count >= 2)
        #expect(cluster["n3"].log.lastIndex == cluster["n1"].log.lastIndex)
    }

    @Test func failedInstallStartsTransferOver() throws {
        let cluster = laggingFollower()
        cluster.configure("n3") { $0.autoInstall = false }
        let meta = try startTransfer(cluster)
        cluster.deliverAll()
        #expect(cluster.node("n3").pendingInstall == meta)
        cluster.failInstall("n3")
        #expect(cluster["n3"].role != .snapshotting)
        // The failure's answer reaches the leader, which offers the snapshot again at once.
        cluster.deliverAll()
        #expect(cluster.messagesSent(where: { $0.to == "n3" && $0.snapshotRequest != nil }).count >= 2)
        #expect(cluster.node("n3").pendingInstall == cluster["n1"].snapshot)
        cluster.finishInstall("n3")
        cluster.heartbeat("n1", rounds: 10)
        #expect(cluster["n3"].snapshot == cluster["n1"].snapshot)
        #expect(cluster["n3"].log.lastIndex == cluster["n1"].log.lastIndex)
    }

    // MARK: Receiving snapshots

    /// n2 with `log` in term 1, and a SnapshotRequest from n1 for `meta`.
    private func receiving(_ meta: SnapshotMetadata, log: [Term] = []) -> (TestCluster, [Action]) {
        let cluster = TestCluster(snapshotSize: Int(meta.size), states: ["n2": state(voters: ["n1", "n2", "n3"], term: 1, log: log)])
        let actions = cluster.step(Message(from: "n1", to: "n2", term: 1, body: .snapshotRequest(meta)))
        return (cluster, actions)
    }

    private func chunk(_ cluster: TestCluster, _ meta: SnapshotMetadata, offset: Int, length: Int = 100) -> Message {
        let bytes = cluster.snapshotBytes(meta)
        let end = min(bytes.count, offset + length)
        return Message(from: "n1", to: "n2", term: 1, body: .snapshotRecoveryRequest(SnapshotRecoveryRequest(
            index: meta.index, snapshotTerm: meta.term, offset: UInt64(offset), data: Array(bytes[offset..<end]), done: end == bytes.count)))
    }

    private let meta = SnapshotMetadata(index: 50, term: 1, configuration: Configuration(voters: ["n1", "n2", "n3"]), size: 300)

    @Test func roleIsSnapshottingWhileReceiving() {
        let (cluster, actions) = receiving(meta)
        cluster.configure("n2") { $0.autoInstall = false }
        #expect(actions.contains(.beginSnapshotReceive(from: "n1", snapshot: meta)))
        #expect(actions.messages.compactMap(\.snapshotResponse?.accepted) == [true])
        #expect(cluster["n2"].role == .snapshotting)
        for offset in [0, 100, 200] { cluster.step(chunk(cluster, meta, offset: offset)) }
        #expect(cluster.node("n2").pendingInstall == meta)
        #expect(cluster["n2"].role == .snapshotting)
        cluster.finishInstall("n2")
        #expect(cluster["n2"].role == .follower)
        #expect(cluster["n2"].snapshot == meta)
    }

    /// A take that was under way when a leader's snapshot came fails while that snapshot is
    /// being installed: the install goes on (a take's failure once ended any receive, so the
    /// shell would adopt a state the core had given up, and the leader start over).
    @Test func failedTakeDoesNotEndAnInstallUnderWay() {
        let (cluster, _) = receiving(meta)
        cluster.configure("n2") { $0.autoInstall = false }
        for offset in [0, 100, 200] { cluster.step(chunk(cluster, meta, offset: offset)) }
        #expect(cluster.node("n2").pendingInstall == meta)
        let before = cluster.messagesSent(where: { $0.from == "n2" && $0.chunkResponse?.success == false }).count
        cluster.failTake("n2")
        #expect(cluster["n2"].role == .snapshotting)
        #expect(cluster["n2"].isReceivingSnapshot)
        #expect(cluster.messagesSent(where: { $0.from == "n2" && $0.chunkResponse?.success == false }).count == before)
        cluster.finishInstall("n2")
        #expect(cluster["n2"].snapshot == meta)
        #expect(cluster["n2"].role == .follower)
    }

    @Test func installOutcomeForAnotherSnapshotIsIgnored() {
        let (cluster, _) = receiving(meta)
        cluster.configure("n2") { $0.autoInstall = false }
        for offset in [0, 100, 200] { cluster.step(chunk(cluster, meta, offset: offset)) }
        var other = meta
        other.index += 1
        var core = cluster["n2"]
        #expect(core.snapshotInstalled(other) == false)
        core.snapshotFailed(other, reason: "stale")
        #expect(core.isReceivingSnapshot)
        #expect(core.role == .snapshotting)
    }

    @Test func followerWritesChunksOnlyInOrder() {
        let (cluster, _) = receiving(meta)
        let early = cluster.step(chunk(cluster, meta, offset: 100))
        #expect(!early.contains { if case .writeSnapshotChunk = $0 { true } else { false } })
        #expect(early.messages.compactMap(\.chunkResponse).map(\.nextOffset) == [0])
        #expect(early.messages.compactMap(\.chunkResponse).map(\.success) == [true])
        let first = cluster.step(chunk(cluster, meta, offset: 0))
        #expect(first.contains { if case let .writeSnapshotChunk(_, offset, _) = $0 { offset == 0 } else { false } })
        #expect(first.messages.compactMap(\.chunkResponse).map(\.nextOffset) == [100])
        // A duplicate of a written chunk is not written again.
        let again = cluster.step(chunk(cluster, meta, offset: 0))
        #expect(!again.contains { if case .writeSnapshotChunk = $0 { true } else { false } })
        #expect(again.messages.compactMap(\.chunkResponse).map(\.nextOffset) == [100])
        #expect(cluster.node("n2").chunksWritten == [0])
    }

    @Test func appendEntriesWaitWhileSnapshotIsReceived() {
        let (cluster, _) = receiving(meta)
        let actions = cluster.step(.appendEntries(from: "n1", to: "n2", term: 1, prev: 50, prevTerm: 1, entries(terms: [1], from: 51)))
        #expect(actions.messages.compactMap(\.appendEntriesResponse?.success) == [false])
        #expect(cluster["n2"].log.lastIndex == 0)
    }

    @Test func newLeaderAbortsUnfinishedReceiveAndFollowerTakesItsEntries() {
        let (cluster, _) = receiving(meta)
        cluster.step(chunk(cluster, meta, offset: 0))
        let actions = cluster.step(.appendEntries(from: "n3", to: "n2", term: 2, prev: 0, prevTerm: 0, entries(terms: [2])))
        #expect(actions.contains(.abortSnapshotReceive(meta)))
        #expect(cluster["n2"].role == .follower)
        #expect(cluster["n2"].leader == "n3")
        #expect(actions.messages.compactMap(\.appendEntriesResponse?.success) == [true])
        #expect(cluster["n2"].log.lastIndex == 1)
    }

    @Test func entriesFromTheSendingLeaderEndAReceiveItGaveUp() {
        // The leader offered a snapshot, then learned it was not needed (an earlier install
        // ended) and replicates instead: its entries end the receive, or it would wait for
        // chunks that never come and refuse every entry (the simulator found that livelock).
        let (cluster, _) = receiving(meta)
        cluster.step(chunk(cluster, meta, offset: 0))
        let actions = cluster.step(.appendEntries(from: "n1", to: "n2", term: 1, prev: 0, prevTerm: 0, entries(terms: [1])))
        #expect(actions.contains(.abortSnapshotReceive(meta)))
        #expect(!cluster["n2"].isReceivingSnapshot)
        #expect(cluster["n2"].role == .follower)
        #expect(actions.messages.compactMap(\.appendEntriesResponse?.success) == [true])
        #expect(cluster["n2"].log.lastIndex == 1)
    }

    @Test func snapshotReceiveFromLostLeaderIsAbandonedForNewLeader() {
        // n1 dies in the middle of a transfer to n3; n2 is elected and catches n3 up itself.
        let cluster = laggingFollower()
        cluster.configure("n3") { $0.autoInstall = false }
        _ = try? startTransfer(cluster)
        cluster.deliverOne(where: { $0.snapshotRequest != nil })
        #expect(cluster["n3"].role == .snapshotting)
        cluster.isolate("n1")
        cluster.configure("n3") { $0.autoInstall = true }
        var ticks = 0
        while cluster.leaders.filter({ $0 != "n1" }).isEmpty && ticks < 50 * Self.settings.electionTicks {
            cluster.tick("n2")
            cluster.tick("n3")
            cluster.deliverAll()
            ticks += 1
        }
        #expect(cluster.leaders.contains("n2"))
        cluster.heartbeat("n2", rounds: 5)
        #expect(cluster["n3"].role == .follower)
        #expect(cluster["n3"].leader == "n2")
        #expect(cluster["n3"].log.lastIndex == cluster["n2"].log.lastIndex)
    }

    @Test func installDiscardsLogThatDoesNotMatchSnapshot() {
        let meta = SnapshotMetadata(index: 8, term: 2, configuration: Configuration(voters: ["n1", "n2", "n3"]), size: 300)
        let (cluster, _) = receiving(meta, log: [1, 1, 1, 1, 1])
        var actions: [Action] = []
        for offset in [0, 100, 200] { actions += cluster.step(chunk(cluster, meta, offset: offset)) }
        #expect(actions.contains(.installSnapshot(meta)))
        #expect(actions.contains(.truncateLog(from: 1)))
        #expect(actions.contains(.compactLog(through: 8, term: 2)))
        let log = cluster["n2"].log
        #expect(log.prevIndex == 8 && log.prevTerm == 2 && log.entries.isEmpty)
        #expect(cluster["n2"].commitIndex == 8)
        #expect(cluster["n2"].appliedIndex == 8)
        #expect(cluster.node("n2").log == log)
        let installed = actions.messages.compactMap(\.chunkResponse).filter(\.installed)
        #expect(installed.count == 1)
    }

    @Test func newMemberIsCaughtUpBySnapshotThenPromoted() {
        let cluster = TestCluster(settings: Self.settings)
        cluster.elect("n1")
        for i in 0..<25 {
            _ = cluster.propose("n1", "c\(i)")
            cluster.deliverAll()
        }
        cluster.add("n4")
        #expect(cluster.proposeChange("n1", .addLearner("n4", address: "a4", promote: true)).value != nil)
        cluster.deliverAll()
        cluster.heartbeat("n1", rounds: 10)
        #expect(cluster.node("n4").observations.contains { if case .snapshotInstalled(from: "n1", _) = $0 { true } else { false } })
        #expect(cluster["n1"].configuration.isVoter("n4"))
        #expect(cluster["n4"].configuration.isVoter("n4"))
        #expect(cluster["n4"].log.lastIndex == cluster["n1"].log.lastIndex)
    }
}
