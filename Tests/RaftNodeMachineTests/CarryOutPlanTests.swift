import Raft
import RaftNodeMachine
import Testing

/// The order a host carries out a batch of outputs in: syncs before what depends on them, and
/// a leader's AppendEntries before the sync of the appends it carries, when that reveals no
/// commit of an unsynced entry.
@Suite("Carry-out plan")
struct CarryOutPlanTests {
    static func entry(_ i: LogIndex) -> Entry { Entry(index: i, term: 2, type: .command, payload: [1]) }
    static func append(_ r: ClosedRange<LogIndex>) -> NodeOutput { .persist(.appendLog(r.map(entry))) }
    static func ae(commit: LogIndex, _ r: ClosedRange<LogIndex>, to: NodeID = "n2") -> NodeOutput {
        .send(Message(from: "n1", to: to, term: 2, body: .appendEntries(AppendEntries(prevLogIndex: r.lowerBound - 1, prevLogTerm: 2, entries: r.map(entry), commitIndex: commit))))
    }
    static let answer = NodeOutput.answer(1, .written(index: 4, term: 2))

    /// The steps as short words: p (persist), s (sync), ae (AppendEntries), o (any other).
    static func shape(_ outputs: [NodeOutput]) -> [String] {
        CarryOutPlan.steps(outputs).map { step in
            switch step {
            case .persist: "p"
            case .sync: "s"
            case let .perform(o):
                if case let .send(m) = o, case .appendEntries = m.body { "ae" } else { "o" }
            }
        }
    }

    @Test("A leader's AppendEntries of entries being synced leaves before the sync; the answer after it")
    func appendEntriesBeforeTheSync() {
        #expect(Self.shape([Self.append(5...6), Self.ae(commit: 4, 5...6), Self.ae(commit: 4, 5...6, to: "n3"), Self.answer]) == ["p", "ae", "ae", "s", "o"])
        // The batch ends with a sync when writes are left.
        #expect(Self.shape([Self.append(5...5), Self.ae(commit: 4, 5...5)]) == ["p", "ae", "s"])
    }

    @Test("An AppendEntries that tells a commit of an unsynced entry waits (one voter commits its own append at once)")
    func commitOfAnUnsyncedEntryWaits() {
        #expect(Self.shape([Self.append(5...5), Self.ae(commit: 5, 5...5)]) == ["p", "s", "ae"])
        #expect(Self.shape([Self.append(5...5), Self.append(6...6), Self.ae(commit: 5, 6...6)]) == ["p", "p", "s", "ae"])
    }

    @Test("With a term, a vote, a truncation or a compaction waiting, everything after waits for the sync")
    func otherPersistsMakeEverythingWait() {
        for other in [Action.saveHardState(HardState(term: 2, votedFor: "n1")), .truncateLog(from: 3), .compactLog(through: 2, term: 1)] {
            #expect(Self.shape([.persist(other), Self.append(5...5), Self.ae(commit: 4, 5...5)]) == ["p", "p", "s", "ae"])
        }
    }

    @Test("Everything else waits: a follower's acknowledgement, a vote, an answer")
    func acknowledgementsWait() {
        let ack = NodeOutput.send(Message(from: "n2", to: "n1", term: 2, body: .appendEntriesResponse(AppendEntriesResponse(success: true, index: 5, lastIndex: 5))))
        let vote = NodeOutput.send(Message(from: "n2", to: "n3", term: 3, body: .requestVoteResponse(granted: true, preVote: false)))
        #expect(Self.shape([Self.append(5...5), ack]) == ["p", "s", "o"])
        #expect(Self.shape([.persist(.saveHardState(HardState(term: 3, votedFor: "n3"))), vote]) == ["p", "s", "o"])
        #expect(Self.shape([Self.answer, Self.append(5...5), Self.answer]) == ["o", "p", "s", "o"])
        #expect(Self.shape([Self.answer]) == ["o"])
    }
}
