import Raft
import Testing

@Suite("Linearizable reads by ReadIndex (dissertation 6.4)")
struct ReadIndexTests {
    @Test func aReadIsReadyOnlyOnceAMajorityAnsweredARoundSentAfterIt() throws {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.deliverAll()
        _ = cluster.propose("n1", "a")
        cluster.deliverAll()
        let commit = cluster["n1"].commitIndex
        #expect(cluster.readIndex("n1", 7))
        cluster.flushActions("n1")
        #expect(cluster.node("n1").readsReady.isEmpty, "ready before any round was answered")
        let rounds = cluster.queued { if case .readRound = $0.body { true } else { false } }
        #expect(rounds.map(\.to).sorted() == ["n2", "n3"])
        // One answer (n2's) makes a majority with the leader.
        cluster.deliverOne { $0.to == "n2" }
        cluster.deliverOne { $0.to == "n1" }
        #expect(cluster.node("n1").readsReady.map(\.id) == [7])
        #expect(cluster.node("n1").readsReady.map(\.index) == [commit])
        // No entry was appended for it.
        #expect(cluster["n1"].log.lastIndex == commit)
    }

    @Test func readsThatComeWhileARoundIsInFlightShareTheNext() throws {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.deliverAll()
        cluster.readIndex("n1", 1)
        cluster.readIndex("n1", 2)
        cluster.readIndex("n1", 3)
        cluster.flushActions("n1")
        // One round in flight, for read 1; reads 2 and 3 wait for the next.
        #expect(cluster.queued { if case .readRound = $0.body { true } else { false } }.count == 2)
        cluster.deliverAll()
        #expect(cluster.node("n1").readsReady.map(\.id) == [1, 2, 3])
        let rounds = cluster.delivered.compactMap { m -> UInt64? in if case let .readRound(_, r) = m.body { r } else { nil } }
        #expect(Set(rounds) == [1, 2])
    }

    @Test func aFollowerRefusesAndACutOffLeaderFailsItsReadsWhenItStepsDown() throws {
        let settings = Settings.test(preVote: true, checkQuorum: true)
        let cluster = TestCluster(settings: settings)
        cluster.elect("n1")
        cluster.deliverAll()
        #expect(!cluster.readIndex("n2", 1))
        cluster.isolate("n1")
        #expect(cluster.readIndex("n1", 9))
        // Never confirmed while cut off; CheckQuorum makes it step down; the read fails.
        for _ in 0..<(3 * settings.electionTicks) { cluster.tick("n1") }
        #expect(cluster["n1"].role != .leader)
        #expect(cluster.node("n1").readsReady.isEmpty)
        #expect(cluster.node("n1").readsFailed == [9])
    }

    @Test func aNewLeaderAnswersReadsOnlyAfterItCommitsAnEntryOfItsTerm() throws {
        let cluster = TestCluster()
        cluster.tickUntilCampaign("n1")
        cluster.deliver(where: \.isVoteTraffic)
        let n1 = cluster["n1"]
        // Elected; its no-op appended, not yet committed: it may not know the commit index.
        #expect(n1.role == .leader && n1.log.term(at: n1.commitIndex) != n1.term)
        #expect(cluster.readIndex("n1", 5))
        #expect(cluster.queued { if case .readRound = $0.body { true } else { false } }.isEmpty)
        #expect(cluster.node("n1").readsReady.isEmpty)
        cluster.deliverAll()
        let after = cluster["n1"]
        #expect(cluster.node("n1").readsReady.map(\.id) == [5])
        #expect(cluster.node("n1").readsReady.first.map { after.log.term(at: $0.index) } == after.term)
    }

    @Test func aSingleVoterAnswersAtOnce() {
        let cluster = TestCluster(["n1"])
        cluster.tickUntilCampaign("n1")
        cluster.deliverAll()
        #expect(cluster["n1"].role == .leader)
        #expect(cluster.readIndex("n1", 4))
        cluster.flushActions("n1")
        #expect(cluster.node("n1").readsReady.map(\.id) == [4])
    }
}
