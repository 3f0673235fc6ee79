import Foundation
import Raft
import Testing
@testable import RaftStorage

/// A goraft snapshot file: the `%08x` CRC-32 line, then `json`.
func goraftFile(_ json: String) -> [UInt8] {
    let bytes = Array(json.utf8)
    let hex = String(CRC32.of(bytes), radix: 16)
    return Array((String(repeating: "0", count: 8 - hex.count) + hex + "\n").utf8) + bytes
}

@Suite("goraft import")
struct GoraftTests {
    @Test func capitalisedKeysAndPeersAsNamesAndEscapes() throws {
        let dir = TempDir("goraft")
        defer { dir.cleanup() }
        let file = dir.join("in.ss")
        try writeBytes(goraftFile(#"{ "LastIndex": 9, "LastTerm": 4, "Peers": ["a", "b"], "Extra": {"x": [1, 2.5e3, null, true]}, "State": "aGVsbG8\/" }"#), file)
        let store = try SnapshotStore(directory: dir.join("snapshot"))
        let meta = try GoraftSnapshot.importFile(path: file, into: store)
        #expect(meta.index == 9 && meta.term == 4 && meta.configuration == Configuration(voters: ["a", "b"]))
        // The JSON escape \/ is '/', so the base64 is "aGVsbG8/".
        #expect(try readState(store.reader(for: meta)) == Array(Data(base64Encoded: "aGVsbG8/")!))
    }

    @Test func largeStateStreamsThrough() throws {
        let dir = TempDir("goraft")
        defer { dir.cleanup() }
        let state = stateBytes(500_000, seed: 3)
        let file = dir.join("big.ss")
        try writeBytes(goraftFile(#"{"lastIndex":1000,"lastTerm":7,"peers":[{"name":"n1","connectionString":"x"}],"state":""# + Data(state).base64EncodedString() + #"","path":"p"}"#), file)
        let info = try GoraftSnapshot.inspect(path: file)
        #expect(info.stateSize == UInt64(state.count))
        let store = try SnapshotStore(directory: dir.join("snapshot"))
        let meta = try GoraftSnapshot.importFile(path: file, into: store)
        #expect(try readState(store.reader(for: meta), piece: 65536) == state)
    }

    @Test func badInputIsRefusedWithAnOffset() throws {
        let dir = TempDir("goraft")
        defer { dir.cleanup() }
        let cases: [(String, String)] = [
            (#"{"lastIndex":1,"lastTerm":1,"peers":["a"],"state":"!!!!"}"#, "not base64"),
            (#"{"lastTerm":1,"peers":["a"],"state":""}"#, "no lastIndex"),
            (#"{"lastIndex":-1,"lastTerm":1}"#, "non-negative integer"),
            (#"{"lastIndex":1,"lastTerm":1,"peers":["a"],"state":"QUJD"} x"#, "bytes after"),
            (#"{"lastIndex":1,"lastTerm":1,"peers":["a"],"state":"QUJD"#, "unterminated"),
        ]
        for (json, expected) in cases {
            let file = dir.join("bad.ss")
            try writeBytes(goraftFile(json), file)
            let e = storageError { _ = try GoraftSnapshot.inspect(path: file) }
            #expect(e?.kind == .damaged, "\(json)")
            #expect(e?.file == file)
            #expect(e?.offset != nil && e!.offset! > 9, "\(json): \(String(describing: e))")
            #expect(e?.detail.contains(expected) == true, "\(json): \(String(describing: e))")
        }
        try writeBytes(Array("hello\n{}".utf8), dir.join("nocrc.ss"))
        #expect(storageError { _ = try GoraftSnapshot.inspect(path: dir.join("nocrc.ss")) }?.detail.contains("8 hex digits") == true)
    }

    @Test func aSnapshotWithoutPeersIsRefused() throws {
        let dir = TempDir("goraft")
        defer { dir.cleanup() }
        try writeBytes(goraftFile(#"{"lastIndex":3,"lastTerm":1,"peers":null,"state":null}"#), dir.join("in.ss"))
        #expect(try GoraftSnapshot.inspect(path: dir.join("in.ss")).stateSize == 0)
        let store = try SnapshotStore(directory: dir.join("snapshot"))
        #expect(storageError { try GoraftSnapshot.importFile(path: dir.join("in.ss"), into: store) }?.detail.contains("no peers") == true)
    }

    @Test func base64DecoderMatchesFoundation() {
        for n in 0..<20 {
            let data = Array(stateBytes(n, seed: UInt64(n)))
            var d = Base64Decoder()
            var out: [UInt8] = []
            var ok = true
            for c in Data(data).base64EncodedString().utf8 { ok = d.feed(c, into: &out) && ok }
            ok = d.finish(into: &out) && ok
            #expect(ok)
            #expect(out == data)
        }
    }
}
