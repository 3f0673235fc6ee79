import Foundation
import HarnessCheck
import Raft
import RaftStorage

/// Writes the run directories of fixtures/runs/ (see fixtures/README.md) with the real
/// storage code, through `NodeDataWriter`. Deterministic: fixed time stamps, and the same
/// zlib gives the same snapshot bytes.
///
/// The story of `clean`: a cluster n1, n2, n3 (bootstrap snapshot at index 0); n1 leads
/// term 1 and commits 1 noop, 2 put k1=v1, 3 put k2=v2, 4 put k1=v3; n3 snapshots at 4 and
/// compacts its log; n1 is killed; n2 leads term 2 and commits 5 noop, 6 put k3=v4; n1 is
/// restarted and catches up; every node reports commit index 6; `await converged` saw
/// applied index 6 on all three. The other runs are this one with one thing planted.
enum RunFixture: String, CaseIterable {
    /// Every check holds.
    case clean
    /// n3's events also say it was leader in term 1, where n1 led.
    case twoLeaders = "two-leaders"
    /// n3 holds put k3=x9 in term 3 at index 6, which it reports committed; n1 and n2 hold
    /// the acknowledged put k3=v4 of term 2 there.
    case committedDiffers = "committed-entry-differs"
    /// n3's snapshot at index 4 holds k1=v1, the value of the put at index 2: the
    /// acknowledged put k1=v3 at index 4 is lost from its state.
    case lostWrite = "lost-write"
    /// Another story (`writeInstallStory`): a former leader, stopped, restarted after the
    /// others compacted their logs, is caught up by a snapshot that replaces its log. Every
    /// check holds: entries a snapshot covers are not removed committed entries.
    case installAfterCompaction = "install-after-compaction"
    /// That story with a stale install: the restarted node installs a snapshot at index 6,
    /// below the commit index 8 it had reported, and drops its committed entries after it.
    case staleInstall = "stale-install"
    /// `clean` with a get of k1 by client c2, invoked after the put k1=v3 was acknowledged,
    /// that read v1: no order of the history explains it (check 6).
    case staleRead = "stale-read"
    /// `clean` where the put k3=v4 was answered `unknown` (its client gave up), and a get of
    /// k3 long after read v4: linearizable, the put took effect after its invocation. A naive
    /// checker that drops unknown operations calls v4 a value never written.
    case unknownLate = "unknown-late"
    /// `clean` where n3 also took a snapshot at index 3 that the one at 4 superseded (kept in
    /// its archive) holding k2=v9: the committed log up to 3 gives k2=v2 (check 7).
    case archivedSnapshotDiffers = "archived-snapshot-differs"
    /// `clean` where n2's second apply event starts at 4, which its first had applied (check 8).
    case appliedTwice = "applied-twice"
    /// `clean` where n2 reports a committed configuration n1, n2, n4 at index 5, whose entry
    /// is a noop: the configuration in force there is n1, n2, n3 (check 9).
    case configDiffers = "config-differs"

    /// A node's `start` event and the committed configuration it starts with.
    static func start(_ w: NodeDataWriter, second: Int, term: Term = 0, last: UInt64 = 0, commit: UInt64 = 0, snap: UInt64 = 0) {
        let c = configuration
        w.event("start", term: term, ts: ts(second), [("lastIndex", .int(last)), ("commitIndex", .int(commit)), ("snapshotIndex", .int(snap))])
        w.event("config", term: term, ts: ts(second), [("index", .int(snap)), ("members", .strings(c.voters)), ("learners", .strings([])), ("phase", .string("committed"))])
    }

    static let configuration = Configuration(
        voters: ["n1", "n2", "n3"], addresses: ["n1": "/tmp/run/n1.peer", "n2": "/tmp/run/n2.peer", "n3": "/tmp/run/n3.peer"])

    static func ts(_ second: Int) -> String { String(format: "2025-01-01T00:00:%02d.000000Z", second) }

    static let entries: [Entry] = [
        Entry(index: 1, term: 1, type: .noop),
        Entry(index: 2, term: 1, type: .command, payload: NodeDataWriter.put("k1", "v1")),
        Entry(index: 3, term: 1, type: .command, payload: NodeDataWriter.put("k2", "v2")),
        Entry(index: 4, term: 1, type: .command, payload: NodeDataWriter.put("k1", "v3")),
        Entry(index: 5, term: 2, type: .noop),
        Entry(index: 6, term: 2, type: .command, payload: NodeDataWriter.put("k3", "v4")),
    ]
    static let finalState = ["k1": "v3", "k2": "v2", "k3": "v4"]

    /// history.jsonl's lines for `puts` (second, key, value, index, term), each invoked by
    /// c1 and acknowledged a second later, and what the fixtures of check 6 change or add.
    func historyLines(_ puts: [(Int, String, String, UInt64, UInt64)]) -> String {
        var history = ""
        for (second, key, value, index, term) in puts {
            history += #"{"type":"invoke","op":"put","client":"c1","key":"\#(key)","value":"\#(value)","ts":"\#(Self.ts(second))"}"# + "\n"
            if self == .unknownLate && value == "v4" {
                history += #"{"type":"unknown","op":"put","client":"c1","key":"\#(key)","value":"\#(value)","ts":"\#(Self.ts(second + 1))"}"# + "\n"
            } else {
                history += #"{"type":"ok","op":"put","client":"c1","key":"\#(key)","value":"\#(value)","index":\#(index),"term":\#(term),"ts":"\#(Self.ts(second + 1))"}"# + "\n"
            }
        }
        if self == .staleRead {
            history += #"{"type":"invoke","op":"get","client":"c2","key":"k1","ts":"\#(Self.ts(8))"}"# + "\n"
            history += #"{"type":"ok","op":"get","client":"c2","key":"k1","value":"v1","index":7,"ts":"\#(Self.ts(9))"}"# + "\n"
        }
        if self == .unknownLate {
            history += #"{"type":"invoke","op":"get","client":"c3","key":"k3","ts":"\#(Self.ts(30))"}"# + "\n"
            history += #"{"type":"ok","op":"get","client":"c3","key":"k3","value":"v4","index":7,"ts":"\#(Self.ts(31))"}"# + "\n"
        }
        return history
    }

    /// Writes the run into `dir` (which must not exist yet).
    func write(to dir: String) throws {
        if self == .installAfterCompaction || self == .staleInstall { return try writeInstallStory(to: dir) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/nodes", withIntermediateDirectories: true)
        let c = Self.configuration

        // n1: leader of term 1, killed, restarted as a follower.
        let n1 = try NodeDataWriter(directory: dir + "/nodes/n1", node: "n1")
        _ = try n1.snapshot(index: 0, term: 0, configuration: c, state: [:], compact: false)
        try n1.saveHardState(term: 1, votedFor: "n1")
        try n1.append(Array(Self.entries[0..<4]))
        try n1.saveHardState(term: 2, votedFor: "n2")
        try n1.append(Array(Self.entries[4...]))
        Self.start(n1, second: 0)
        n1.event("role", term: 0, ts: Self.ts(0), [("role", .string("follower"))])
        n1.event("role", term: 1, ts: Self.ts(1), [("role", .string("candidate"))])
        n1.event("vote", term: 1, ts: Self.ts(1), [("for", .string("n1"))])
        n1.event("role", term: 1, ts: Self.ts(1), [("role", .string("leader"))])
        n1.event("commit", term: 1, ts: Self.ts(2), [("index", .int(2))])
        n1.apply(from: 1, through: 2, term: 1, ts: Self.ts(2))
        n1.event("commit", term: 1, ts: Self.ts(3), [("index", .int(4))])
        n1.apply(from: 3, through: 4, term: 1, ts: Self.ts(3))
        Self.start(n1, second: 6, term: 1, last: 4)
        n1.event("role", term: 1, ts: Self.ts(6), [("role", .string("follower"))])
        n1.event("vote", term: 2, ts: Self.ts(6), [("for", .string("n2"))])
        n1.event("commit", term: 2, ts: Self.ts(7), [("index", .int(6))])
        n1.apply(from: 1, through: 6, term: 2, ts: Self.ts(7))
        try n1.close()

        // n2: follower in term 1, leader of term 2.
        let n2 = try NodeDataWriter(directory: dir + "/nodes/n2", node: "n2")
        _ = try n2.snapshot(index: 0, term: 0, configuration: c, state: [:], compact: false)
        try n2.saveHardState(term: 2, votedFor: "n2")
        try n2.append(Self.entries)
        Self.start(n2, second: 0)
        n2.event("role", term: 0, ts: Self.ts(0), [("role", .string("follower"))])
        n2.event("vote", term: 1, ts: Self.ts(1), [("for", .string("n1"))])
        n2.event("commit", term: 1, ts: Self.ts(3), [("index", .int(4))])
        n2.apply(from: 1, through: 4, term: 1, ts: Self.ts(3))
        n2.event("role", term: 2, ts: Self.ts(5), [("role", .string("candidate"))])
        n2.event("vote", term: 2, ts: Self.ts(5), [("for", .string("n2"))])
        n2.event("role", term: 2, ts: Self.ts(5), [("role", .string("leader"))])
        n2.event("commit", term: 2, ts: Self.ts(6), [("index", .int(6))])
        n2.apply(from: self == .appliedTwice ? 4 : 5, through: 6, term: 2, ts: Self.ts(6))
        if self == .configDiffers {
            n2.event("config", term: 2, ts: Self.ts(6), [("index", .int(5)), ("members", .strings(["n1", "n2", "n4"])), ("learners", .strings([])), ("phase", .string("committed"))])
        }
        try n2.close()

        // n3: follower throughout; snapshot at 4, log compacted through it.
        let n3 = try NodeDataWriter(directory: dir + "/nodes/n3", node: "n3")
        _ = try n3.snapshot(index: 0, term: 0, configuration: c, state: [:], compact: false)
        try n3.saveHardState(term: self == .committedDiffers ? 3 : 2, votedFor: self == .committedDiffers ? "n3" : "n2")
        try n3.append(Array(Self.entries[0..<4]))
        if self == .archivedSnapshotDiffers {
            try n3.snapshot(index: 3, term: 1, configuration: c, state: ["k1": "v1", "k2": "v9"], compact: false)
        }
        let snapState = self == .lostWrite ? ["k1": "v1", "k2": "v2"] : ["k1": "v3", "k2": "v2"]
        try n3.snapshot(index: 4, term: 1, configuration: c, state: snapState)
        if self == .committedDiffers {
            try n3.append([Self.entries[4], Entry(index: 6, term: 3, type: .command, payload: NodeDataWriter.put("k3", "x9"))])
        } else {
            try n3.append(Array(Self.entries[4...]))
        }
        Self.start(n3, second: 0)
        n3.event("role", term: 0, ts: Self.ts(0), [("role", .string("follower"))])
        n3.event("vote", term: 1, ts: Self.ts(1), [("for", .string("n1"))])
        if self == .twoLeaders { n3.event("role", term: 1, ts: Self.ts(2), [("role", .string("leader"))]) }
        n3.event("commit", term: 1, ts: Self.ts(3), [("index", .int(4))])
        n3.apply(from: 1, through: 4, term: 1, ts: Self.ts(3))
        if self == .archivedSnapshotDiffers {
            n3.event("snapshot-taken", term: 1, ts: Self.ts(3), [("index", .int(3)), ("snapshotTerm", .int(1)), ("bytes", .int(0)), ("ms", .int(1))])
        }
        n3.event("snapshot-taken", term: 1, ts: Self.ts(4), [("index", .int(4)), ("snapshotTerm", .int(1)), ("bytes", .int(0)), ("ms", .int(1))])
        n3.event("compact", term: 1, ts: Self.ts(4), [("through", .int(4))])
        n3.event("vote", term: 2, ts: Self.ts(5), [("for", .string("n2"))])
        n3.event("commit", term: self == .committedDiffers ? 3 : 2, ts: Self.ts(6), [("index", .int(6))])
        n3.apply(from: 5, through: 6, term: self == .committedDiffers ? 3 : 2, ts: Self.ts(6))
        try n3.close()

        // history.jsonl: the four puts, each acknowledged.
        var history = ""
        let puts: [(Int, String, String, UInt64, UInt64)] = [(1, "k1", "v1", 2, 1), (2, "k2", "v2", 3, 1), (3, "k1", "v3", 4, 1), (5, "k3", "v4", 6, 2)]
        history += historyLines(puts)
        try Data(history.utf8).write(to: URL(fileURLWithPath: dir + "/history.jsonl"))

        let digest = NodeDataWriter.digest(of: Self.finalState)
        let log = [
            "\(Self.ts(0)) cluster n1 n2 n3 ok 100ms",
            "\(Self.ts(1)) await leader within 5s ok 900ms",
            "\(Self.ts(4)) write 3 ok 2100ms",
            "\(Self.ts(4)) kill leader as old ok 5ms",
            "\(Self.ts(5)) await leader within 5s ok 700ms",
            "\(Self.ts(6)) write 1 ok 300ms",
            "\(Self.ts(6)) start $old ok 50ms",
            "\(Self.ts(8)) await converged within 10s ok 1200ms",
            "\(Self.ts(8)) converged applied=6 digest=\(digest) nodes=n1,n2,n3",
        ].map { $0 + "\n" }.joined()
        try Data(log.utf8).write(to: URL(fileURLWithPath: dir + "/harness.log"))
        let report = #"{"scenario":"\#(rawValue)","seed":1,"verdict":"\#(self == .clean ? "pass" : "fail")","checks":[],"ms":8000}"# + "\n"
        try Data(report.utf8).write(to: URL(fileURLWithPath: dir + "/report.json"))
    }

    /// The story of `install-after-compaction`: n1 leads term 1 and commits 1 noop, 2 put
    /// k1=v1, 3 put k2=v2, 4 put k1=v3 and reports it; n1 is stopped; n2 leads term 2 and commits 5 noop, 6 put k3=v4, 7 put k4=v5, 8 put k2=v6;
    /// n2 and n3 snapshot at 8 and compact their logs through it; n1 restarts (its log 1-4,
    /// its snapshot the bootstrap one) and installs n2's snapshot at 8, which replaces its
    /// log (a `compact` through 8); n2 commits 9 put k5=v7 and 10 put k1=v8; all report 10.
    ///
    /// `stale-install`: n1 reported commit index 8 before it stopped (it was a follower in
    /// term 2 by then, holding 1-8), and on its restart installs a snapshot at 6, dropping
    /// its entries 7-8 (`compact` through 6, `truncate` from 7).
    func writeInstallStory(to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir + "/nodes", withIntermediateDirectories: true)
        let c = Self.configuration
        let stale = self == .staleInstall
        let entries: [Entry] = [
            Entry(index: 1, term: 1, type: .noop),
            Entry(index: 2, term: 1, type: .command, payload: NodeDataWriter.put("k1", "v1")),
            Entry(index: 3, term: 1, type: .command, payload: NodeDataWriter.put("k2", "v2")),
            Entry(index: 4, term: 1, type: .command, payload: NodeDataWriter.put("k1", "v3")),
            Entry(index: 5, term: 2, type: .noop),
            Entry(index: 6, term: 2, type: .command, payload: NodeDataWriter.put("k3", "v4")),
            Entry(index: 7, term: 2, type: .command, payload: NodeDataWriter.put("k4", "v5")),
            Entry(index: 8, term: 2, type: .command, payload: NodeDataWriter.put("k2", "v6")),
            Entry(index: 9, term: 2, type: .command, payload: NodeDataWriter.put("k5", "v7")),
            Entry(index: 10, term: 2, type: .command, payload: NodeDataWriter.put("k1", "v8")),
        ]
        let at6 = ["k1": "v3", "k2": "v2", "k3": "v4"]
        let at8 = ["k1": "v3", "k2": "v6", "k3": "v4", "k4": "v5"]
        let final = ["k1": "v8", "k2": "v6", "k3": "v4", "k4": "v5", "k5": "v7"]

        // n1: leader of term 1 (a follower of n2 in term 2 in the stale story), stopped,
        // restarted, caught up by a snapshot that replaces its log.
        let n1 = try NodeDataWriter(directory: dir + "/nodes/n1", node: "n1")
        _ = try n1.snapshot(index: 0, term: 0, configuration: c, state: [:], compact: false)
        try n1.saveHardState(term: 2, votedFor: "n2")
        try n1.append(Array(entries[0..<(stale ? 8 : 4)]))
        Self.start(n1, second: 0)
        n1.event("role", term: 1, ts: Self.ts(1), [("role", .string("candidate"))])
        n1.event("vote", term: 1, ts: Self.ts(1), [("for", .string("n1"))])
        n1.event("role", term: 1, ts: Self.ts(1), [("role", .string("leader"))])
        n1.event("commit", term: 1, ts: Self.ts(2), [("index", .int(4))])
        n1.apply(from: 1, through: 4, term: 1, ts: Self.ts(2))
        if stale {
            n1.event("role", term: 2, ts: Self.ts(3), [("role", .string("follower"))])
            n1.event("vote", term: 2, ts: Self.ts(3), [("for", .string("n2"))])
            n1.event("commit", term: 2, ts: Self.ts(4), [("index", .int(8))])
            n1.apply(from: 5, through: 8, term: 2, ts: Self.ts(4))
        }
        n1.event("stop", term: stale ? 2 : 1, ts: Self.ts(4), [("reason", .string("SIGTERM"))])
        Self.start(n1, second: 6, term: 2, last: stale ? 8 : 4)
        n1.event("role", term: 2, ts: Self.ts(6), [("role", .string("snapshotting"))])
        let installed: LogIndex = stale ? 6 : 8
        try n1.snapshot(index: installed, term: 2, configuration: c, state: stale ? at6 : at8)
        if stale { try n1.append(Array(entries[6...])) } else { try n1.append(Array(entries[8...])) }
        n1.event("snapshot-installed", term: 2, ts: Self.ts(7), [("from", .string("n2")), ("index", .int(installed)), ("snapshotTerm", .int(2)), ("bytes", .int(0)), ("ms", .int(5))])
        if stale { n1.event("truncate", term: 2, ts: Self.ts(7), [("from", .int(7))]) }
        n1.event("compact", term: 2, ts: Self.ts(7), [("through", .int(installed))])
        n1.event("role", term: 2, ts: Self.ts(7), [("role", .string("follower"))])
        n1.event("commit", term: 2, ts: Self.ts(8), [("index", .int(10))])
        n1.apply(from: installed + 1, through: 10, term: 2, ts: Self.ts(8))
        try n1.close()

        // n2 and n3: n2 leads term 2; both snapshot at 8 and compact through it.
        for name in ["n2", "n3"] {
            let w = try NodeDataWriter(directory: dir + "/nodes/" + name, node: name)
            _ = try w.snapshot(index: 0, term: 0, configuration: c, state: [:], compact: false)
            try w.saveHardState(term: 2, votedFor: "n2")
            try w.append(Array(entries[0..<8]))
            try w.snapshot(index: 8, term: 2, configuration: c, state: at8)
            try w.append(Array(entries[8...]))
            Self.start(w, second: 0)
            w.event("vote", term: 1, ts: Self.ts(1), [("for", .string("n1"))])
            w.event("commit", term: 1, ts: Self.ts(2), [("index", .int(4))])
            w.apply(from: 1, through: 4, term: 1, ts: Self.ts(2))
            if name == "n2" {
                w.event("role", term: 2, ts: Self.ts(3), [("role", .string("candidate"))])
                w.event("vote", term: 2, ts: Self.ts(3), [("for", .string("n2"))])
                w.event("role", term: 2, ts: Self.ts(3), [("role", .string("leader"))])
            } else {
                w.event("vote", term: 2, ts: Self.ts(3), [("for", .string("n2"))])
            }
            w.event("commit", term: 2, ts: Self.ts(4), [("index", .int(8))])
            w.apply(from: 5, through: 8, term: 2, ts: Self.ts(4))
            w.event("snapshot-taken", term: 2, ts: Self.ts(5), [("index", .int(8)), ("snapshotTerm", .int(2)), ("bytes", .int(0)), ("ms", .int(1))])
            w.event("compact", term: 2, ts: Self.ts(5), [("through", .int(8))])
            if name == "n2" {
                w.event("snapshot-sent", term: 2, ts: Self.ts(7), [("to", .string("n1")), ("index", .int(8)), ("snapshotTerm", .int(2)), ("bytes", .int(0)), ("ms", .int(5))])
            }
            w.event("commit", term: 2, ts: Self.ts(8), [("index", .int(10))])
            w.apply(from: 9, through: 10, term: 2, ts: Self.ts(8))
            try w.close()
        }

        var history = ""
        let puts: [(Int, String, String, UInt64, UInt64)] = [
            (1, "k1", "v1", 2, 1), (1, "k2", "v2", 3, 1), (2, "k1", "v3", 4, 1), (4, "k3", "v4", 6, 2), (4, "k4", "v5", 7, 2),
            (4, "k2", "v6", 8, 2), (7, "k5", "v7", 9, 2), (7, "k1", "v8", 10, 2),
        ]
        history += historyLines(puts)
        try Data(history.utf8).write(to: URL(fileURLWithPath: dir + "/history.jsonl"))
        let log = [
            "\(Self.ts(0)) cluster n1 n2 n3 ok 100ms",
            "\(Self.ts(1)) await leader within 5s as old ok 900ms",
            "\(Self.ts(2)) write 3 ok 900ms",
            "\(Self.ts(4)) stop $old ok 40ms",
            "\(Self.ts(4)) write 3 ok 600ms",
            "\(Self.ts(5)) snapshot n2 ok 20ms",
            "\(Self.ts(6)) start $old ok 50ms",
            "\(Self.ts(7)) write 2 ok 300ms",
            "\(Self.ts(9)) await converged within 10s ok 1200ms",
            "\(Self.ts(9)) converged applied=10 digest=\(NodeDataWriter.digest(of: final)) nodes=n1,n2,n3",
        ].map { $0 + "\n" }.joined()
        try Data(log.utf8).write(to: URL(fileURLWithPath: dir + "/harness.log"))
        let report = #"{"scenario":"\#(rawValue)","seed":1,"verdict":"\#(stale ? "fail" : "pass")","checks":[],"ms":9000}"# + "\n"
        try Data(report.utf8).write(to: URL(fileURLWithPath: dir + "/report.json"))
    }
}
