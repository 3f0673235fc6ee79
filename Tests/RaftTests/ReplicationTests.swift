import Raft
import Testing

/// Raft paper §5.3 (log replication), §5.4.2 (committing entries from previous terms, figure 8),
/// goraft's Do(command), and per-follower progress.
@Suite("Log replication (§5.3, §5.4.2)")
struct ReplicationTests {
    // MARK: goraft's AppendEntries tests

    @Test func appendEntriesFromStaleTermIsRejectedWithTheNewerTerm() {
        let cluster = TestCluster(states: ["n2": state(voters: ["n1", "n2", "n3"], term: 3, log: [])])
        let actions = cluster.step(.appendEntries(from: "n1", to: "n2", term: 2, prev: 0, prevTerm: 0, entries(terms: [2])))
        #expect(cluster["n2"].log.lastIndex == 0)
        #expect(!actions.contains { if case .appendLog = $0 { true } else { false } })
        let answers = actions.messages
        #expect(answers.count == 1)
        #expect(answers.allSatisfy { $0.to == "n1" && $0.term == 3 })
        #expect(cluster["n2"].term == 3)
        #expect(cluster["n2"].leader == nil)
    }

    @Test func staleLeaderStepsDownOnAnswerCarryingNewerTerm() {
        let cluster = TestCluster(settings: .test(checkQuorum: false))
        cluster.elect("n1")
        cluster.isolate("n1")
        cluster.elect("n2")
        #expect(cluster["n1"].role == .leader)
        cluster.heal()
        _ = cluster.propose("n1", "x")
        cluster.deliverAll()
        #expect(cluster["n1"].role == .follower)
        #expect(cluster["n1"].term == cluster["n2"].term)
        #expect(cluster.leaders == ["n2"])
    }

    @Test func uncommittedEntriesAreOverwrittenByNewLeader() throws {
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.isolate("n1")
        let index = try #require(cluster.propose("n1", "lost").value).index
        #expect(cluster["n1"].log.entry(at: index)?.term == 1)
        cluster.elect("n2")
        cluster.heal()
        cluster.heartbeat("n2", rounds: 2)
        let replaced = try #require(cluster["n1"].log.entry(at: index))
        #expect(replaced.term == cluster["n2"].term)
        #expect(replaced == cluster["n2"].log.entry(at: index))
        #expect(cluster.node("n1").observations.contains(.truncate(from: index)))
    }

    @Test func entriesAreAppendedBeforeTheyAreAcknowledged() throws {
        let cluster = TestCluster()
        let actions = cluster.step(.appendEntries(from: "n1", to: "n2", term: 1, prev: 0, prevTerm: 0, entries(terms: [1, 1])))
        let appended = try #require(actions.firstIndex { if case .appendLog = $0 { true } else { false } })
        let saved = try #require(actions.firstIndex { $0.savedHardState?.term == 1 })
        let ack = try #require(actions.firstIndex { $0.message?.appendEntriesResponse?.success == true })
        #expect(saved < ack)
        #expect(appended < ack)
        #expect(actions[ack].message?.appendEntriesResponse?.index == 2)
    }

    @Test func followerRemovesOnlyTheConflictingSuffix() {
        let cluster = TestCluster(states: ["n2": state(voters: ["n1", "n2", "n3"], term: 1, log: [1, 1, 1, 1])])
        let kept = Array(cluster["n2"].log.entries.prefix(2))
        let actions = cluster.step(.appendEntries(from: "n1", to: "n2", term: 2, prev: 2, prevTerm: 1, entries(terms: [2], from: 3)))
        #expect(actions.contains(.truncateLog(from: 3)))
        #expect(!actions.contains { if case let .truncateLog(from) = $0 { from < 3 } else { false } })
        let log = cluster["n2"].log
        #expect(Array(log.entries.prefix(2)) == kept)
        #expect(log.lastIndex == 3)
        #expect(log.term(at: 3) == 2)
    }

    @Test func followerNeverTruncatesMatchingEntriesWhateverOrderAppendEntriesArrive() {
        // Late, reordered and duplicated requests of one leader: every order leaves the
        // follower's log a prefix of the leader's and never removes an entry (goraft truncated
        // on every request).
        let leaderLog = entries(terms: [1, 1, 1, 1, 1, 1])
        let requests: [Message] = [
            .appendEntries(from: "n1", to: "n2", term: 1, prev: 0, prevTerm: 0, Array(leaderLog[0..<3])),
            .appendEntries(from: "n1", to: "n2", term: 1, prev: 3, prevTerm: 1, Array(leaderLog[3..<6]), commit: 2),
            .appendEntries(from: "n1", to: "n2", term: 1, prev: 0, prevTerm: 0, leaderLog),
            .appendEntries(from: "n1", to: "n2", term: 1, prev: 2, prevTerm: 1, Array(leaderLog[2..<4]), commit: 1),
        ]
        var orders = 0
        for order in permutations(Array(requests.indices)) {
            let cluster = TestCluster()
            for i in order + order {
                let actions = cluster.step(requests[i])
                #expect(!actions.contains { if case .truncateLog = $0 { true } else { false } }, "order \(order)")
                let log = cluster["n2"].log
                #expect(log.entries == Array(leaderLog.prefix(log.entries.count)), "order \(order)")
            }
            #expect(cluster["n2"].log.entries == leaderLog, "order \(order)")
            orders += 1
        }
        #expect(orders == 24)
    }

    @Test func proposeOnFollowerFailsWithLeaderHint() {
        let cluster = TestCluster()
        cluster.elect("n1")
        #expect(cluster.propose("n2", "x").error == .notLeader(leader: "n1"))
        #expect(cluster["n2"].log.lastIndex == cluster["n1"].log.lastIndex)
    }

    @Test func proposeWithNoLeaderKnownFailsWithoutHint() {
        let cluster = TestCluster()
        #expect(cluster.propose("n1", "x").error == .notLeader(leader: nil))
    }

    // MARK: §5.3 the conflict hint

    /// AppendEntries rejections `to` sent while `leader` was elected and caught it up.
    private func rejections(_ cluster: TestCluster, from follower: NodeID) -> Int {
        cluster.messagesSent { $0.from == follower && $0.appendEntriesResponse?.success == false }.count
    }

    @Test func followerFarBehindIsFoundInFewRoundTrips() {
        let voters = ["n1", "n2", "n3"]
        let long = [Term](repeating: 1, count: 1000)
        let cluster = TestCluster(settings: .test { $0.snapshotThreshold = 0 }, states: [
            "n1": state(voters: voters, term: 1, log: long),
            "n2": state(voters: voters, term: 1, log: []),
            "n3": state(voters: voters, term: 1, log: long),
        ])
        cluster.elect("n1")
        #expect(cluster["n2"].log == cluster["n1"].log)
        #expect(rejections(cluster, from: "n2") <= 2)
        // 1,001 entries at 200 a request: a probe, a rejection, then six requests.
        #expect(cluster.messagesSent { $0.to == "n2" && $0.appendEntries != nil }.count <= 9)
    }

    @Test func longDivergentSuffixIsFoundInFewRoundTrips() {
        // n2 holds 500 entries of a deposed leader of term 2; the new leader none of them.
        let voters = ["n1", "n2", "n3"]
        let leaders = [Term](repeating: 1, count: 100) + [Term](repeating: 3, count: 600)
        let cluster = TestCluster(settings: .test { $0.snapshotThreshold = 0 }, states: [
            "n1": state(voters: voters, term: 3, log: leaders),
            "n2": state(voters: voters, term: 2, log: [Term](repeating: 1, count: 100) + [Term](repeating: 2, count: 500)),
            "n3": state(voters: voters, term: 3, log: leaders),
        ])
        cluster.elect("n1")
        #expect(cluster["n2"].log == cluster["n1"].log)
        // One entry back a round trip would take 500.
        #expect(rejections(cluster, from: "n2") <= 3)
    }

    // MARK: §5.4.2, figure 8

    /// Five voters after figure 8 (c): n1 led term 2 and put 2@2 on n2; n5 led term 3 and
    /// put 2@3 on itself alone. n1 is elected in term 4 (NOP 3@4) while n5 is cut off, and
    /// replicates 2@2 to n3 and n4 one entry a request, but not yet its NOP.
    private func figure8(_ mutations: Set<Settings.Mutation> = []) -> TestCluster {
        let voters = ["n1", "n2", "n3", "n4", "n5"]
        let cluster = TestCluster(
            voters,
            settings: .test(preVote: false, checkQuorum: false) {
                $0.maxEntriesPerRequest = 1
                $0.mutations = mutations
            },
            states: [
                "n1": state(voters: voters, term: 3, log: [1, 2]),
                "n2": state(voters: voters, term: 3, log: [1, 2]),
                "n3": state(voters: voters, term: 3, log: [1]),
                "n4": state(voters: voters, term: 3, log: [1]),
                "n5": state(voters: voters, term: 3, log: [1, 3]),
            ])
        cluster.isolate("n5")
        cluster.tickUntilCampaign("n1")
        cluster.deliver(where: \.isVoteTraffic)
        #expect(cluster["n1"].role == .leader && cluster["n1"].term == 4)
        // Everything gets through but the NOP of term 4 (a request that carries it arrives only
        // where it is rejected).
        cluster.deliver(where: { m in
            guard let ae = m.appendEntries, ae.entries.contains(where: { $0.term == 4 }) else { return true }
            return cluster[m.to].log.term(at: ae.prevLogIndex) != ae.prevLogTerm
        })
        return cluster
    }

    @Test func leaderDoesNotCommitEntryOfEarlierTermByCountingReplicas() {
        let cluster = figure8()
        let holders = cluster.ids.filter { cluster[$0].log.term(at: 2) == 2 }
        #expect(holders == ["n1", "n2", "n3", "n4"])
        #expect(cluster["n1"].commitIndex == 0)
    }

    @Test func leaderCommitsEarlierTermEntryOnceEntryOfItsTermIsOnMajority() {
        let cluster = figure8()
        cluster.deliverAll()
        #expect(cluster["n1"].commitIndex == 3)
        #expect(cluster.node("n1").applied.map(\.term) == [1, 2, 4])
    }

    @Test func commitOldTermByCountingMutationCommitsByCounting() {
        let cluster = figure8([.commitOldTermByCounting])
        #expect(cluster["n1"].commitIndex == 2)
    }

    @Test func commitOldTermByCountingMutationLetsCommittedEntryBeOverwritten() {
        // Figure 8 (d): with the rule broken, n5 (last term 3) wins and replaces 2@2.
        let cluster = figure8([.commitOldTermByCounting])
        #expect(cluster["n1"].commitIndex == 2)
        cluster.heal()
        cluster.isolate("n1")
        cluster.drop(where: { _ in true })
        cluster.elect("n5")
        #expect(cluster["n2"].log.term(at: 2) == 3)
        #expect(cluster["n1"].log.term(at: 2) == 2)
    }

    // MARK: goraft's Do(command)

    @Test func proposalIsAppliedWithItsIndexAndTermOnceCommitted() throws {
        let cluster = TestCluster()
        cluster.elect("n1")
        let (index, term) = try #require(cluster.propose("n1", "x").value)
        #expect(index == cluster["n1"].log.lastIndex)
        #expect(term == cluster["n1"].term)
        #expect(!cluster.node("n1").applied.contains { $0.index == index })
        cluster.deliverAll()
        let applied = try #require(cluster.node("n1").applied.first { $0.index == index })
        #expect(applied.term == term)
        #expect(applied.payload == Array("x".utf8))
    }

    @Test func overwrittenProposalIndexIsAppliedWithAnotherTerm() throws {
        // What a shell compares to report failure rather than success.
        let cluster = TestCluster()
        cluster.elect("n1")
        cluster.isolate("n1")
        let (index, term) = try #require(cluster.propose("n1", "lost").value)
        cluster.elect("n2")
        _ = cluster.propose("n2", "kept")
        cluster.heal()
        cluster.heartbeat("n2", rounds: 3)
        let applied = try #require(cluster.node("n1").applied.first { $0.index == index })
        #expect(applied.term != term)
        #expect(!cluster.node("n1").applied.contains { $0.payload == Array("lost".utf8) })
    }

    // MARK: Per-follower progress

    @Test func slowAndUnreachableFollowersDoNotHoldBackCommits() {
        // n5 is cut off; n4 is slow: nothing reaches it until later.
        let cluster = TestCluster(["n1", "n2", "n3", "n4", "n5"])
        cluster.elect("n1")
        cluster.isolate("n5")
        let commands = ["a", "b", "c"].map { Array($0.utf8) }
        _ = cluster.propose("n1", commands)
        cluster.deliver(where: { $0.to != "n4" })
        #expect(cluster["n1"].commitIndex == cluster["n1"].log.lastIndex)
        #expect(Array(cluster.node("n1").applied.map(\.payload).suffix(3)) == commands)
        #expect(cluster["n4"].log.lastIndex < cluster["n1"].log.lastIndex)
        // The slow one catches up when its messages arrive.
        cluster.deliverAll()
        #expect(cluster["n4"].log == cluster["n1"].log)
    }

    @Test func appendEntriesCarryAtMostMaxEntriesPerRequest() {
        let cluster = TestCluster(settings: .test { $0.maxEntriesPerRequest = 3 })
        cluster.elect("n1")
        _ = cluster.propose("n1", (0..<10).map { [UInt8($0)] })
        let sizes = cluster.queued { $0.to == "n2" }.compactMap { $0.appendEntries?.entries.count }
        #expect(sizes == [3, 3, 3, 1])
        cluster.deliverAll()
        #expect(cluster["n2"].log == cluster["n1"].log)
    }

    @Test func lostAppendEntriesAreRecoveredByHeartbeats() {
        // With the in-flight window full of lost requests, heartbeat answers restart the flow.
        let cluster = TestCluster(settings: .test {
            $0.maxEntriesPerRequest = 1
            $0.maxInflight = 2
        })
        cluster.elect("n1")
        _ = cluster.propose("n1", (0..<10).map { [UInt8($0)] })
        cluster.drop(where: { $0.to == "n2" })
        cluster.deliverAll()
        #expect(cluster["n2"].log.lastIndex < cluster["n1"].log.lastIndex)
        cluster.heartbeat("n1", rounds: 3)
        #expect(cluster["n2"].log == cluster["n1"].log)
    }

    @Test func inflightAppendEntriesAreLimitedPerFollower() {
        let cluster = TestCluster(settings: .test {
            $0.maxEntriesPerRequest = 1
            $0.maxInflight = 2
        })
        cluster.elect("n1")
        _ = cluster.propose("n1", (0..<10).map { [UInt8($0)] })
        let toN2: (Message) -> Bool = { $0.to == "n2" && $0.appendEntries != nil }
        let sent = cluster.queued(where: toN2).map { $0.appendEntries!.prevLogIndex }
        #expect(sent.count == 2)
        // One answered: one more goes, still two in flight.
        cluster.deliverOne(where: toN2)
        cluster.deliver(where: { $0.from == "n2" })
        let now = cluster.queued(where: toN2).map { $0.appendEntries!.prevLogIndex }
        #expect(now == [sent[1], sent[1] + 1])
    }
}

/// Every order of `items`.
func permutations<T>(_ items: [T]) -> [[T]] {
    guard items.count > 1 else { return [items] }
    var out: [[T]] = []
    for (i, x) in items.enumerated() {
        var rest = items
        rest.remove(at: i)
        for p in permutations(rest) { out.append([x] + p) }
    }
    return out
}
