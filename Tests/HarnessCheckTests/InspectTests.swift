import Foundation
import HarnessCheck
import Raft
import RaftStorage
import Testing

@Suite struct InspectTests {
    func digest(_ s: String) -> String { StableHash.of(Array(s.utf8)).hex16 }

    @Test func aValidLogDirGivesItsEntriesOldestFirst() {
        let out = Inspector.inspect(path: fixture("log-valid"), json: true)
        #expect(out.exitCode == 0)
        #expect(out.lines.count == 6)
        #expect(out.lines[1] == #"{"kind":"entry","index":2,"term":1,"type":"noop","digest":"\#(StableHash.of([UInt8]()).hex16)"}"#)
        #expect(out.lines[2] == #"{"kind":"entry","index":3,"term":1,"type":"command","digest":"\#(digest("put alpha 1"))"}"#)
        #expect(out.lines[0].hasPrefix(#"{"kind":"entry","index":1,"term":1,"type":"config","digest":""#))
        #expect(out.lines[5] == #"{"kind":"entry","index":6,"term":2,"type":"command","digest":"\#(digest("put gamma 333"))"}"#)
        // A segment file gives the same lines.
        #expect(Inspector.inspect(path: fixture("log-valid/00000000000000000001.seg"), json: true).lines == out.lines)
    }

    @Test func aDamagedLogGivesWhatItCouldReadThenAnErrorWithTheOffset() {
        let seg = fixture("log-damaged-middle/00000000000000000001.seg")
        let out = Inspector.inspect(path: fixture("log-damaged-middle"), json: true)
        #expect(out.exitCode == 1)
        #expect(out.lines.count == 3)
        #expect(out.lines[2].hasPrefix(#"{"kind":"error","file":"\#(seg)","offset":168,"detail":"record checksum mismatch"#))
        let gap = Inspector.inspect(path: fixture("log-index-gap"), json: true)
        #expect(gap.exitCode == 1)
        #expect(gap.lines.count == 4)
        #expect(gap.lines[3].contains(#""offset":204,"detail":"index gap: expected index 4, found 5"}"#))
        let torn = Inspector.inspect(path: fixture("log-torn/00000000000000000001.seg"), json: true)
        #expect(torn.exitCode == 1)
        #expect(torn.lines.count == 7)
        #expect(torn.lines[6].contains(#""offset":303,"#))
        #expect(torn.lines[6].contains("cut short by a crash"))
    }

    @Test func aSnapshotFileGivesItsLine() {
        let out = Inspector.inspect(path: fixture("snapshot-valid.ss"), json: true)
        #expect(out.exitCode == 0)
        #expect(out.lines.count == 1)
        // Its state is text, not key-value state: no digest, and why.
        #expect(out.lines[0].hasPrefix(#"{"kind":"snapshot","index":42,"term":3,"members":["n1","n2","n3"],"learners":[],"bytes":180,"digest":null,"stateError":"not key-value state"#))
    }

    @Test func damagedSnapshotsGiveAnErrorWithTheOffset() {
        let bad = Inspector.inspect(path: fixture("snapshot-bad-checksum.ss"), json: true)
        #expect(bad.exitCode == 1)
        #expect(bad.lines.count == 2)
        #expect(bad.lines[0].hasPrefix(#"{"kind":"snapshot","index":42,"term":3,"#))
        #expect(bad.lines[1].contains(#""offset":146,"detail":"body checksum mismatch"#))
        let truncated = Inspector.inspect(path: fixture("snapshot-truncated.ss"), json: true)
        #expect(truncated.exitCode == 1)
        #expect(truncated.lines.count == 1)
        #expect(truncated.lines[0].contains(#""offset":173,"detail":"truncated"#))
        let future = Inspector.inspect(path: fixture("snapshot-future-version.ss"), json: true)
        #expect(future.lines == [#"{"kind":"error","file":"\#(fixture("snapshot-future-version.ss"))","offset":8,"detail":"snapshot format version 2 is newer than this build reads (1)"}"#])
    }

    @Test func aMetaFile() {
        #expect(Inspector.inspect(path: fixture("meta-valid"), json: true).lines == [#"{"kind":"meta","term":3,"votedFor":"n2"}"#])
        #expect(Inspector.inspect(path: fixture("meta-valid"), json: false).lines == ["meta: term 3, voted for n2"])
    }

    @Test func aNodeDataDir() throws {
        let out = Inspector.inspect(path: fixture("runs/clean/nodes/n3"), json: true)
        #expect(out.exitCode == 0)
        let snapshotDigest = NodeDataWriter.digest(of: ["k1": "v3", "k2": "v2"])
        let size = try #require(FileManager.default.attributesOfItem(atPath: fixture("runs/clean/nodes/n3/snapshot/00000000000000000001_00000000000000000004.ss"))[.size] as? NSNumber)
        #expect(out.lines == [
            #"{"kind":"meta","term":2,"votedFor":"n2"}"#,
            #"{"kind":"snapshot","index":4,"term":1,"members":["n1","n2","n3"],"learners":[],"bytes":\#(size),"digest":"\#(snapshotDigest)"}"#,
            #"{"kind":"entry","index":5,"term":2,"type":"noop","digest":"\#(StableHash.of([UInt8]()).hex16)"}"#,
            #"{"kind":"entry","index":6,"term":2,"type":"command","digest":"\#(StableHash.of(NodeDataWriter.put("k3", "v4")).hex16)"}"#,
        ])
        // The same payload gives the same digest on every node.
        let n1 = Inspector.inspect(path: fixture("runs/clean/nodes/n1"), json: true).lines
        #expect(n1.suffix(2) == out.lines.suffix(2))
        let human = Inspector.inspect(path: fixture("runs/clean/nodes/n3"), json: false).lines
        #expect(human[0] == "meta: term 2, voted for n2")
        #expect(human[1].hasPrefix("snapshot: index 4, term 1, voters=[n1,n2,n3], \(size) bytes"))
        #expect(human[3] == "entry 6 term 2 command \(StableHash.of(NodeDataWriter.put("k3", "v4")).hex16): put \"k3\"=\"v4\"")
    }

    @Test func anEventsFileGivesItsLines() {
        let path = fixture("runs/clean/nodes/n2/events.jsonl")
        let out = Inspector.inspect(path: path, json: true)
        let text = String(decoding: FileManager.default.contents(atPath: path)!, as: UTF8.self)
        #expect(out.lines == text.split(separator: "\n").map(String.init))
        let human = Inspector.inspect(path: path, json: false).lines
        #expect(human[2] == "2025-01-01T00:00:00.000000Z n2 term 0 role role=\"follower\"")
    }

    @Test func badInputIsOneLineAndNonZero() {
        let out = Inspector.inspect(path: "/nonexistent/x", json: true)
        #expect(out.exitCode == 2)
        #expect(out.lines.isEmpty)
        #expect(out.error == "inspect: /nonexistent/x: no such file or directory")
        #expect(Inspector.inspect(path: fixture("README.md"), json: false).exitCode == 2)
    }
}
