import Raft
import RaftNodeWire
import Testing

@Suite("Node wire: the node's outside as types")
struct WireTests {
    @Test("Every event kind of SPEC section 4 writes a line that reads back as the same event")
    func eventsRoundTrip() throws {
        let events: [NodeEvent] = [
            .start(lastIndex: 3, commitIndex: 2, snapshotIndex: 1), .stop(reason: "SIGTERM"), .role("candidate", preVote: true),
            .role("leader", preVote: false), .vote(for: "n2"), .truncate(from: 7), .compact(through: 9), .commit(index: 12),
            .config(index: 4, members: ["n1", "n2"], learners: ["n3"], committed: false),
            .snapshotTaken(index: 10, snapshotTerm: 2, bytes: 300, ms: 4), .snapshotSent(to: "n3", index: 10, snapshotTerm: 2, bytes: 300, ms: 9),
            .snapshotInstalled(from: "n1", index: 10, snapshotTerm: 2, bytes: 300, ms: 12),
            .snapshotAbandoned(to: "n3", index: 10, offset: 64, reason: "stalled"), .apply(from: 5, index: 9, term: 2),
            .error(what: "client", detail: "bad \"request\"\n"),
        ]
        for e in events {
            let line = e.line(ts: "2026-01-01T00:00:00.000000Z", node: "n1", term: 3)
            let back = try #require(NodeEventLine(parsing: line), "\(line)")
            // An apply line's term is its entry's (SPEC section 4 names one term a line).
            var term: Term = 3
            if case let .apply(_, _, t) = e { term = t }
            #expect(back.event == e && back.node == "n1" && back.term == term, "\(line)")
        }
        #expect(NodeEventLine(parsing: #"{"ts":"x","node":"n1","term":1,"event":"no-such"}"#) == nil)
        #expect(NodeEventLine(parsing: "not json") == nil)
    }

    @Test("Answers of SPEC section 5 read back for the request they answer")
    func answersRoundTrip() throws {
        let cases: [(ClientOp, ClientAnswer)] = [
            (.put(key: "k", value: "v"), .written(index: 12, term: 3)), (.get(key: "k"), .read(value: "v", index: 12)),
            (.get(key: "k"), .read(value: nil, index: 12)), (.snapshot, .done(index: 12)), (.remove(node: "n2"), .done(index: 14)),
            (.put(key: "k", value: "v"), .failed(.notLeader, leader: "n2")), (.add(node: "n4", address: "/x"), .failed(.badRequest, detail: "why")),
        ]
        for (op, a) in cases {
            let line = a.line(id: .int(7))
            #expect(ClientAnswer(parsing: line, for: op) == a, "\(line)")
        }
        #expect(ClientAnswer(parsing: #"{"id":1,"ok":false,"error":"no-such-error"}"#, for: .status) == nil)
        let status = StatusReport(
            name: "n1", role: "leader", term: 3, leader: "n1", commitIndex: 12, appliedIndex: 12, lastIndex: 12, snapshotIndex: 0,
            members: ["n1", "n2"], learners: [], configIndex: 1, digest: "00ff", snapshotting: false,
            peers: [("n2", PeerProgressReport(state: "snapshot", match: 3, next: 4, lastHeardMs: 20, transfer: .init(index: 9, offset: 64, bytes: 128, accepted: true, installing: false)))])
        #expect(ClientAnswer(parsing: ClientAnswer.status(status).line(id: .int(1)), for: .status) == .status(status))
    }

    @Test("A request line reads back as the request")
    func requestsRoundTrip() {
        let ops: [ClientOp] = [.put(key: "k\n", value: "ü\"v"), .delete(key: "k"), .get(key: "k"), .status, .snapshot, .add(node: "n4", address: "/p"), .remove(node: "n2")]
        for op in ops {
            let (id, parsed, problem) = parseClientRequest(op.line(id: .int(3)))
            #expect(parsed == op && problem == nil && id == .int(3))
        }
    }

    @Test("The JSON reader takes escapes, surrogate pairs, nesting; refuses what is not JSON")
    func jsonReader() {
        #expect(JSONValue.parse(#" {"a":[1,-2,{"b":null}],"c":"\u00e9\ud83d\ude00\t","d":true} "#)
            == .object([("a", .array([.int(1), .int(-2), .object([("b", .null)])])), ("c", .string("é😀\t")), ("d", .bool(true))]))
        for bad in ["", "{", #"{"a":}"#, "[1,]", #""\x""#, "1.5", "{} {}", "\"\u{01}\""] { #expect(JSONValue.parse(bad) == nil, "\(bad)") }
        let s = "quote \" back \\ nl \n tab \t ctl \u{02} é"
        #expect(JSONValue.parse(JSONValue.quote(s)) == .string(s))
    }

    @Test("The settings table: each default reads back, raft-node's arguments hold every row, bad values name the setting")
    func settingsTable() throws {
        let defaults = NodeSettings()
        var back = NodeSettings()
        back.electionTimeoutMs = 1
        for row in NodeSettings.table { try back.set(row, NodeSettings.defaultText(flag: row.flag)) }
        #expect(back == defaults)
        var s = NodeSettings()
        s.heartbeatMs = 20
        s.snapshotChunk = 1024
        let args = s.arguments
        for row in NodeSettings.table { #expect(args.contains("--" + row.flag)) }
        var parsed = NodeSettings()
        for pair in stride(from: 0, to: args.count, by: 2) {
            try parsed.set(try #require(NodeSettings.row(flag: String(args[pair].dropFirst(2)))), args[pair + 1])
        }
        #expect(parsed == s)
        #expect(s.tickMs == 4 && s.core.heartbeatTicks == 5 && s.core.electionTicks == 37)
        #expect(throws: SettingError.self) { try parsed.set(NodeSettings.row(flag: "snapshot-chunk")!, "32MiB") }
        #expect(throws: SettingError.self) { try parsed.set(NodeSettings.row(key: "heartbeat")!, "fast") }
        var bad = NodeSettings()
        bad.heartbeatMs = 200
        #expect(throws: SettingError.self) { try bad.validate() }
    }

    @Test("Timestamps are RFC 3339 UTC with microseconds")
    func timestamps() {
        #expect(Timestamp.rfc3339(unixMicros: Timestamp.simulationEpochMicros) == "2026-01-01T00:00:00.000000Z")
        #expect(Timestamp.rfc3339(unixMicros: 1_767_225_600_123_456 + 86_400_000_000) == "2026-01-02T00:00:00.123456Z")
    }
}
