import Foundation
import HarnessCheck
import Raft
import RaftNodeWire
import RaftStorage
import Testing

@Suite struct RunCheckerTests {
    /// Set REGENERATE_RUN_FIXTURES=1 to rewrite fixtures/runs/ from the generator.
    @Test func committedFixturesAreTheGeneratorsOutput() throws {
        let tmp = makeTempDir("gen")
        defer { remove(tmp) }
        for run in RunFixture.allCases {
            let fresh = tmp + "/" + run.rawValue
            try run.write(to: fresh)
            let committed = fixture("runs/" + run.rawValue)
            if ProcessInfo.processInfo.environment["REGENERATE_RUN_FIXTURES"] != nil {
                remove(committed)
                try run.write(to: committed)
            }
            #expect(files(under: committed) == files(under: fresh), "\(run.rawValue): the same files")
            for f in files(under: fresh) {
                if f.hasSuffix(".ss") {
                    // Another zlib may compress to other bytes: compare what inspect reads.
                    #expect(Inspector.inspect(path: committed + "/" + f, json: true).lines == Inspector.inspect(path: fresh + "/" + f, json: true).lines, "\(run.rawValue)/\(f)")
                } else {
                    // A Bool, not two arrays: a failed #expect on large arrays takes minutes to diff.
                    let same = bytes(committed + "/" + f) == bytes(fresh + "/" + f)
                    #expect(same, "\(run.rawValue)/\(f) is what the generator writes")
                }
            }
        }
    }

    @Test func cleanRunPasses() {
        let results = RunChecker.check(runDirectory: fixture("runs/clean"))
        #expect(
            results.map(\.name) == [
                "files", "one-leader-per-term", "log-matching", "committed-entries", "acknowledged-writes", "converged-state", "linearizable",
                "snapshot-states", "applied-in-order", "configurations",
            ])
        for r in results { #expect(r.passed, "\(r.name): \(r.evidence)") }
        #expect(result(results, "acknowledged-writes").notes.contains { $0.contains("4 acknowledged puts") })
        // Every check verified something, and says how much.
        for r in results { #expect(!r.verified.isEmpty && !r.verifiedNothing, "\(r.name): \(r.verified)") }
        // n3's snapshots at 0 (archived: the one at 4 superseded it) and 4, n1's and n2's at 0,
        // all from the committed log; n3's compacted entries 1-4 are read from its archive.
        #expect(count(result(results, "snapshot-states"), "snapshots") == 4)
        #expect(result(results, "files").notes.contains("4 entries read from archives and before compaction points"))
        // 7 apply events cover 1-2, 3-4, 1-6 (n1 after its restart), 1-4, 5-6 (n2), 1-4, 5-6 (n3).
        #expect(count(result(results, "applied-in-order"), "apply events") == 7)
        #expect(count(result(results, "applied-in-order"), "entries") == 22)
        // The four start events' configurations at index 0, and three of the four snapshots'
        // (the first at index 0 gives the configuration the others are checked against).
        #expect(count(result(results, "configurations"), "config events") == 4)
        #expect(count(result(results, "configurations"), "snapshots") == 3)
    }

    func count(_ r: CheckResult, _ what: String) -> Int? { r.verified.first { $0.what == what }?.count }

    @Test func aSnapshotWhoseStateIsNotTheCommittedLogsFails() throws {
        let results = RunChecker.check(runDirectory: fixture("runs/archived-snapshot-differs"))
        let r = result(results, "snapshot-states")
        #expect(!r.passed)
        #expect(
            r.evidence == [
                "n3's snapshot nodes/n3/archive/snapshot/00000000000000000001_00000000000000000003.ss at index 3 holds state \(NodeDataWriter.digest(of: ["k1": "v1", "k2": "v9"])) (2 keys), but the committed log folds to \(NodeDataWriter.digest(of: ["k1": "v1", "k2": "v2"])) (2 keys) there: key \"k2\" is \"v9\" in the snapshot, \"v2\" in the log"
            ])
        // When: n3's snapshot-taken event of index 3.
        #expect(r.firstViolationAt == Timestamp.unixMicros(rfc3339: "2025-01-01T00:00:03.000000Z"))
        #expect(r.json.serialized.contains(#""at":"2025-01-01T00:00:03.000000Z""#))
        for other in results where other.name != "snapshot-states" { #expect(other.passed, "\(other.name): \(other.evidence)") }
    }

    @Test func anEntryAppliedTwiceFails() {
        let results = RunChecker.check(runDirectory: fixture("runs/applied-twice"))
        let r = result(results, "applied-in-order")
        #expect(r.evidence == ["n2 applied 4...6 (nodes/n2/events.jsonl line 11) after applying through 4: entries 4...4 applied twice"])
        for other in results where other.name != "applied-in-order" { #expect(other.passed, "\(other.name): \(other.evidence)") }
    }

    @Test func aCommittedConfigurationThatIsNotTheLogsFails() {
        let results = RunChecker.check(runDirectory: fixture("runs/config-differs"))
        let r = result(results, "configurations")
        #expect(
            r.evidence == [
                "n2 reported committed configuration members [n1,n2,n4] learners [] at index 5 (nodes/n2/events.jsonl line 12), but the configuration in force there is members [n1,n2,n3] learners [] (nodes/n1/snapshot/00000000000000000000_00000000000000000000.ss)"
            ])
        for other in results where other.name != "configurations" { #expect(other.passed, "\(other.name): \(other.evidence)") }
    }

    @Test func aSearchPastItsBudgetIsUnknownNeverAPass() {
        let results = RunChecker.check(runDirectory: fixture("runs/stale-read"), linearizabilityBudget: 1)
        let r = result(results, "linearizable")
        #expect(!r.passed && r.unknown && r.status == "unknown")
        #expect(r.evidence.contains { $0.contains("unknown, the search ran out of its budget") })
        // The same history with the default budget is a failure, not unknown.
        let full = result(RunChecker.check(runDirectory: fixture("runs/stale-read")), "linearizable")
        #expect(!full.passed && !full.unknown && full.status == "fail")
    }

    @Test func twoLeadersInOneTermAreRejected() {
        let results = RunChecker.check(runDirectory: fixture("runs/two-leaders"))
        let r = result(results, "one-leader-per-term")
        #expect(!r.passed)
        #expect(r.evidence == ["term 1 had 2 leaders: n1 (nodes/n1/events.jsonl line 6), n3 (nodes/n3/events.jsonl line 5)"])
        for other in results where other.name != "one-leader-per-term" { #expect(other.passed, "\(other.name): \(other.evidence)") }
    }

    @Test func differentEntriesAtACommittedIndexAreRejected() throws {
        let results = RunChecker.check(runDirectory: fixture("runs/committed-entry-differs"))
        let r = result(results, "committed-entries")
        #expect(!r.passed)
        let line = try #require(r.evidence.first)
        #expect(line.hasPrefix("committed index 6 differs between nodes: n1 has term 2 command"))
        #expect(line.contains("(nodes/n1/log/00000000000000000001.seg at byte"))
        #expect(line.contains("n3 has term 3 command"))
        #expect(line.contains("nodes/n3/log/"))
        #expect(line.contains("n3 reported commit index 6 at nodes/n3/events.jsonl line 10"))
        // The acknowledged put at 6 is contradicted by n3's committed entry, and the states differ.
        #expect(result(results, "acknowledged-writes").evidence.contains {
            $0.contains("acknowledged put \"k3\"=\"v4\" at index 6 term 2 (history.jsonl line 8)") && $0.contains("n3's committed entry at index 6 has term 3")
        })
        #expect(!result(results, "converged-state").passed)
        #expect(result(results, "one-leader-per-term").passed)
        #expect(result(results, "log-matching").passed)
    }

    @Test func aSnapshotInstallThatReplacesTheLogAfterCompactionPasses() {
        let results = RunChecker.check(runDirectory: fixture("runs/install-after-compaction"))
        for r in results { #expect(r.passed, "\(r.name): \(r.evidence)") }
        #expect(result(results, "committed-entries").notes.contains { $0.contains("0 truncations, 3 compactions and 1 installs checked") })
    }

    @Test func aStaleInstallThatDropsCommittedEntriesIsRejected() {
        let results = RunChecker.check(runDirectory: fixture("runs/stale-install"))
        let r = result(results, "committed-entries")
        #expect(!r.passed)
        #expect(r.evidence.contains("n1 installed a snapshot at index 6 (nodes/n1/events.jsonl line 16, term 2) below the commit index 8 it had reported (nodes/n1/events.jsonl line 10)"), "\(r.evidence)")
        #expect(r.evidence.contains("n1 removed its entries from index 7 on (nodes/n1/events.jsonl line 17, term 2) after reporting commit index 8 (nodes/n1/events.jsonl line 10)"), "\(r.evidence)")
        #expect(r.evidence.count == 2, "\(r.evidence)")
    }

    @Test func everyWipeStartsTheReportedCommitIndexAfresh() throws {
        let dir = makeTempDir("wipes")
        defer { remove(dir) }
        try RunFixture.installAfterCompaction.write(to: dir + "/run")
        // n3 (which reported commit 10) is wiped twice: in its second life it installs the
        // snapshot at 8, then it is wiped again. No life installs below its own commit index.
        let ev = dir + "/run/nodes/n3/events.jsonl"
        func line(_ event: String, _ fields: String) -> String {
            #"{"ts":"2025-01-01T00:00:09.000000Z","node":"n3","term":2,"event":"\#(event)"\#(fields)}"# + "\n"
        }
        let zero = #","lastIndex":0,"commitIndex":0,"snapshotIndex":0"#
        let extra = line("stop", #","reason":"removed""#) + line("start", zero)
            + line("snapshot-installed", #","from":"n2","index":8,"snapshotTerm":2,"bytes":0,"ms":1"#) + line("compact", #","through":8"#)
            + line("stop", #","reason":"removed""#) + line("start", zero)
        try Data((String(decoding: bytes(ev), as: UTF8.self) + extra).utf8).write(to: URL(fileURLWithPath: ev))
        let r = result(RunChecker.check(runDirectory: dir + "/run"), "committed-entries")
        #expect(r.passed, "\(r.evidence)")
    }

    @Test func aCompactionNoSnapshotCoversIsRejected() throws {
        let dir = makeTempDir("uncovered")
        defer { remove(dir) }
        try RunFixture.installAfterCompaction.write(to: dir + "/run")
        let ev = dir + "/run/nodes/n3/events.jsonl"
        let extra = #"{"ts":"2025-01-01T00:00:09.000000Z","node":"n3","term":2,"event":"compact","through":9}"# + "\n"
        try Data((String(decoding: bytes(ev), as: UTF8.self) + extra).utf8).write(to: URL(fileURLWithPath: ev))
        let r = result(RunChecker.check(runDirectory: dir + "/run"), "committed-entries")
        #expect(r.evidence == ["n3 dropped its entries through index 9 (nodes/n3/events.jsonl line 13, term 2) with no snapshot covering them (its newest at index 8)"])
    }

    @Test func aLostAcknowledgedWriteIsRejected() throws {
        let results = RunChecker.check(runDirectory: fixture("runs/lost-write"))
        let r = result(results, "acknowledged-writes")
        #expect(!r.passed)
        let line = try #require(r.evidence.first)
        #expect(line.hasPrefix("acknowledged put \"k1\"=\"v3\" at index 4 term 1 (history.jsonl line 6) is lost: n3 at applied index 6"))
        #expect(line.contains("snapshot nodes/n3/snapshot/00000000000000000001_00000000000000000004.ss"))
        #expect(line.contains("holds \"k1\"=\"v1\", the value of the earlier put at index 2 (history.jsonl line 2)"))
        #expect(r.evidence.count == 1)
        let converged = result(results, "converged-state")
        #expect(converged.evidence.first?.hasPrefix("after await converged (harness.log line 9) at applied index 6") == true)
        // Check 7 sees the planted state in the snapshot itself, against the committed log.
        #expect(result(results, "snapshot-states").evidence.first?.contains("key \"k1\" is \"v1\" in the snapshot, \"v3\" in the log") == true)
        for name in ["files", "one-leader-per-term", "log-matching", "committed-entries", "applied-in-order", "configurations"] {
            #expect(result(results, name).passed, "\(name)")
        }
    }

    @Test func aWriteNoNodeHoldsIsLost() throws {
        let dir = makeTempDir("beyond")
        defer { remove(dir) }
        try RunFixture.clean.write(to: dir + "/run")
        let extra = #"{"type":"ok","op":"put","client":"c2","key":"k9","value":"v9","index":7,"term":2,"ts":"x"}"# + "\n"
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/run/history.jsonl"))
        try h.seekToEnd()
        h.write(Data(extra.utf8))
        try h.close()
        let r = result(RunChecker.check(runDirectory: dir + "/run"), "acknowledged-writes")
        #expect(r.evidence == [#"acknowledged put "k9"="v9" at index 7 term 2 (history.jsonl line 9) is lost: no node's files reach index 7 (n1 to 6, n2 to 6, n3 to 6)"#])
    }

    @Test func aClientWithTwoOperationsAtOnceIsAProblemOfTheHistory() throws {
        let dir = makeTempDir("overlap")
        defer { remove(dir) }
        try RunFixture.clean.write(to: dir + "/run")
        let extra =
            #"{"type":"invoke","op":"put","client":"c9","key":"k8","value":"a","ts":"2026-01-01T00:00:40Z"}"# + "\n"
            + #"{"type":"invoke","op":"put","client":"c9","key":"k8","value":"b","ts":"2026-01-01T00:00:41Z"}"# + "\n"
            + #"{"type":"fail","op":"put","client":"c9","key":"k8","ts":"2026-01-01T00:00:42Z"}"# + "\n"
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/run/history.jsonl"))
        try h.seekToEnd()
        h.write(Data(extra.utf8))
        try h.close()
        let r = result(RunChecker.check(runDirectory: dir + "/run"), "files")
        #expect(r.evidence.contains { $0.hasSuffix("line 10: client c9 invoked again before its operation invoked at line 9 ended") }, "\(r.evidence)")
    }

    @Test func damagedFilesFailWithFileAndOffsetAndNeverCrash() throws {
        let dir = makeTempDir("damaged")
        defer { remove(dir) }
        let run = dir + "/run"
        try RunFixture.clean.write(to: run)
        // A flipped payload byte in n2's segment, in the record of entry 3 (not the last).
        let seg = run + "/nodes/n2/log/00000000000000000001.seg"
        var b = bytes(seg)
        let scan = try LogSegment.scan(path: seg)
        let at = Int(scan.offsets[2])
        b[at + 8 + 17 + 2] ^= 0x40
        try Data(b).write(to: URL(fileURLWithPath: seg))
        // A truncated snapshot for n3, a broken events line for n1, garbage meta for n2.
        let snap = run + "/nodes/n3/snapshot/00000000000000000001_00000000000000000004.ss"
        let s = bytes(snap)
        try Data(s.prefix(s.count - 5)).write(to: URL(fileURLWithPath: snap))
        let ev = run + "/nodes/n1/events.jsonl"
        try Data((String(decoding: bytes(ev), as: UTF8.self) + "{not json\n").utf8).write(to: URL(fileURLWithPath: ev))
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: run + "/nodes/n2/meta"))

        let results = RunChecker.check(runDirectory: run)
        let files = result(results, "files")
        #expect(!files.passed)
        #expect(files.evidence.contains { $0.hasPrefix("nodes/n2/log/00000000000000000001.seg at byte \(at): record checksum mismatch") })
        #expect(files.evidence.contains { $0.hasPrefix("nodes/n3/snapshot/00000000000000000001_00000000000000000004.ss at byte \(s.count - 5): truncated") })
        #expect(files.evidence.contains { $0.hasPrefix("nodes/n1/events.jsonl at byte") && $0.hasSuffix("line 17 is not a JSON object") })
        #expect(files.evidence.contains("nodes/n2/meta at byte 0: not a meta file (bad magic)"))
    }

    @Test func aMissingRunDirectoryFailsWithoutCrashing() {
        let results = RunChecker.check(runDirectory: "/nonexistent/run")
        #expect(!result(results, "files").passed)
        #expect(result(results, "files").evidence.contains("nodes: no node data dirs"))
    }

    @Test func aTornLastRecordIsNotDamage() throws {
        let dir = makeTempDir("torn")
        defer { remove(dir) }
        let run = dir + "/run"
        try RunFixture.clean.write(to: run)
        let seg = run + "/nodes/n1/log/00000000000000000001.seg"
        var record: [UInt8] = []
        LogSegment.appendRecord(Entry(index: 7, term: 2, type: .command, payload: NodeDataWriter.put("k4", "v5")), to: &record)
        try Data(bytes(seg) + record.prefix(10)).write(to: URL(fileURLWithPath: seg))
        let results = RunChecker.check(runDirectory: run)
        for r in results { #expect(r.passed, "\(r.name): \(r.evidence)") }
        #expect(result(results, "files").notes.contains { $0.contains("torn record") })
    }

    @Test func aTruncationOfReportedCommittedEntriesIsRejected() throws {
        let dir = makeTempDir("trunc")
        defer { remove(dir) }
        let run = dir + "/run"
        try RunFixture.clean.write(to: run)
        let ev = run + "/nodes/n2/events.jsonl"
        let line = #"{"ts":"2025-01-01T00:00:09.000000Z","node":"n2","term":2,"event":"truncate","from":5}"# + "\n"
        try Data(bytes(ev) + Array(line.utf8)).write(to: URL(fileURLWithPath: ev))
        let r = result(RunChecker.check(runDirectory: run), "committed-entries")
        #expect(r.evidence == ["n2 removed its entries from index 5 on (nodes/n2/events.jsonl line 12, term 2) after reporting commit index 6 (nodes/n2/events.jsonl line 10)"])
    }

    @Test func aWipedNodeWhoseEventsSurviveIsNotHeldToThem() throws {
        let dir = makeTempDir("wiped")
        defer { remove(dir) }
        let run = dir + "/run"
        try RunFixture.clean.write(to: run)
        // As the harness wipes: everything but events.jsonl (n1 led term 1 and reported commit 6).
        for name in ["meta", "log", "snapshot"] { remove(run + "/nodes/n1/" + name) }
        let results = RunChecker.check(runDirectory: run)
        for r in results { #expect(r.passed, "\(r.name): \(r.evidence)") }
        #expect(result(results, "files").notes.contains { $0.contains("nodes/n1 holds no data (wiped)") })
        #expect(result(results, "converged-state").notes.contains { $0.contains("n1's files no longer hold its state at index 6") })
    }

    @Test func aStaleReadFailsCheck6WithAMinimalFragmentAndEveryOtherCheckHolds() throws {
        let results = RunChecker.check(runDirectory: fixture("runs/stale-read"))
        let check = result(results, "linearizable")
        #expect(!check.passed)
        let evidence = try #require(check.evidence.first)
        #expect(evidence.contains("key k1: these 3 operations cannot be linearized"), "\(evidence)")
        for part in ["c2 get read v1", "c1 put v1", "c1 put v3", "history.jsonl line 9", "2025-01-01T00:00:08.000000Z"] {
            #expect(evidence.contains(part), "\(part) in \(evidence)")
        }
        #expect(!evidence.contains("put v2"), "another key's operation in the evidence")
        #expect(results.filter { $0.name != "linearizable" && !$0.passed }.isEmpty, "\(results.filter { !$0.passed })")
    }

    @Test func anUnknownPutReadLaterIsLinearizable() {
        let results = RunChecker.check(runDirectory: fixture("runs/unknown-late"))
        #expect(results.filter { !$0.passed }.isEmpty, "\(results.filter { !$0.passed })")
        // What it verified: the four puts (one unknown) and the get, on three keys.
        #expect(result(results, "linearizable").notes == ["5 operations on 3 keys (1 gets, 1 unknown) checked as registers"])
    }

    @Test func convergedLinesParse() {
        let results = RunChecker.check(runDirectory: fixture("runs/clean"))
        #expect(result(results, "converged-state").notes.contains("1 converged lines in harness.log"))
    }

    @Test func resultsSerializeForTheReport() {
        let r = CheckResult(name: "x", passed: false, evidence: ["a \"b\""], notes: [], verified: [.init("terms", 3)], firstViolationAt: 1_000_000)
        #expect(
            r.json.serialized
                == #"{"name":"x","passed":false,"status":"fail","verified":{"terms":3},"at":"1970-01-01T00:00:01.000000Z","evidence":["a \"b\""],"notes":[]}"#)
        #expect(CheckResult(name: "y", passed: true, verified: [.init("terms", 0)]).verifiedNothing)
    }
}
