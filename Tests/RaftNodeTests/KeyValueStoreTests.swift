import Raft
import Testing

@testable import RaftNode
import RaftNodeHost
@testable import RaftNodeMachine
@testable import RaftNodeWire

// The state machine's snapshot form: serialize streams the pairs in key order, the restorer
// rebuilds them from pieces cut anywhere, and damage is an error at its offset as soon as the
// bytes show it (not a buffer that grows with the rest of the state).
@Suite("key-value state")
struct KeyValueStoreTests {
    static func sample() -> KeyValueStore {
        var s = KeyValueStore()
        for i in 0..<300 { s.put("k\(i)", String(repeating: "v\(i % 7)é", count: i % 50)) }
        s.delete("k3")
        s.put("k4", "replaced")
        return s
    }

    static func bytes(_ s: KeyValueStore) -> [UInt8] {
        var out: [UInt8] = []
        s.serialize(pieceSize: 100) { out += $0 }
        return out
    }

    @Test("pieces cut at any size rebuild the same pairs and digest", arguments: [1, 3, 64, 1000, 1 << 20])
    func roundTrip(piece: Int) throws {
        let original = Self.sample()
        let all = Self.bytes(original)
        var r = KeyValueRestorer()
        var i = 0
        while i < all.count {
            try r.feed(Array(all[i..<min(all.count, i + piece)]))
            i += piece
        }
        let back = try r.finish()
        #expect(back.values == original.values)
        #expect(back.digest == original.digest)
        #expect(back.byteCount == original.byteCount)
        // Kept as writes go (replaced and deleted pairs included), as summing would give.
        #expect(original.byteCount == original.values.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count })
    }

    @Test("a value that is not UTF-8 is refused when its bytes arrive, at its offset")
    func badUTF8() throws {
        var s = KeyValueStore()
        s.put("a", "xxxx")
        s.put("b", "yyyy")
        var all = Self.bytes(s)
        // count (8) + "a" (4+1) + "xxxx" length (4): the first byte of the first value.
        let at = 8 + 5 + 4
        all[at] = 0xFF
        var r = KeyValueRestorer()
        do {
            try r.feed(all)
            Issue.record("accepted a value that is not UTF-8")
        } catch {
            #expect(error.offset == at - 4)
            #expect(error.detail.contains("not UTF-8"))
        }
    }

    @Test("a length no pair can have is refused at once, not waited for")
    func hugeLength() throws {
        var s = KeyValueStore()
        s.put("a", "x")
        var all = Self.bytes(s)
        all[8] = 0x7F  // the key's length: 2 GiB
        var r = KeyValueRestorer()
        do {
            try r.feed(Array(all.prefix(20)))
            Issue.record("waited for a 2 GiB key")
        } catch {
            #expect(error.offset == 8)
            #expect(error.detail.contains("over the limit"))
        }
    }

    @Test("a state cut short is refused at finish")
    func truncated() throws {
        let all = Self.bytes(Self.sample())
        var r = KeyValueRestorer()
        try r.feed(Array(all.dropLast(5)))
        #expect(throws: DecodingError.self) { try r.finish() }
    }
}
