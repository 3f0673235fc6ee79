// RaftNodeMachine is the node's decisions, pure: no I/O, no clock, no threads. A host (the
// process runtime in RaftNode, or the simulator of `harness run --sim`) feeds it inputs and
// the time and carries out its outputs.
//
//   NodeMachine.swift     the core plus client requests, deadlines, pending writes, snapshot
//                         work as outputs, events as values, what status says
//   KeyValueStore.swift   the state machine: a key-value map with a deterministic digest
//   Commands.swift        how client operations are encoded in log entries

import Raft

/// The state machine: a map from keys to values, with a digest that depends only on the
/// pairs (not on the order of writes), so nodes at the same applied index compare equal.
public struct KeyValueStore: Sendable {
    public private(set) var values: [String: String] = [:]
    public private(set) var digest: UInt64 = 0
    /// UTF-8 bytes of every key and value: what a snapshot of the state serialises.
    public private(set) var byteCount = 0

    public init() {}

    private static func pairHash(_ key: String, _ value: String) -> UInt64 {
        var h = StableHash()
        h.combine(key)
        h.combine(value)
        return h.finalized
    }

    public subscript(key: String) -> String? { values[key] }

    public var count: Int { values.count }

    public mutating func put(_ key: String, _ value: String) {
        if let old = values[key] {
            digest &-= Self.pairHash(key, old)
            byteCount -= key.utf8.count + old.utf8.count
        }
        values[key] = value
        digest &+= Self.pairHash(key, value)
        byteCount += key.utf8.count + value.utf8.count
    }

    public mutating func delete(_ key: String) {
        if let old = values.removeValue(forKey: key) {
            digest &-= Self.pairHash(key, old)
            byteCount -= key.utf8.count + old.utf8.count
        }
    }

    /// The digest as clients and `harness` see it.
    public var digestHex: String { digest.hex16 }

    /// Streams the state as snapshot bytes, in key order, in pieces of about `pieceSize`
    /// bytes: `count`, then (key, value) pairs, each length-prefixed. The map is a value,
    /// so a copy taken on the node's thread can be streamed on another while writes go on.
    public func serialize(pieceSize: Int = 1 << 16, _ emit: ([UInt8]) throws -> Void) rethrows {
        var w = ByteWriter(capacity: pieceSize + 1024)
        w.write(UInt64(values.count))
        for key in values.keys.sorted() {
            w.write(key)
            w.write(values[key]!)
            if w.bytes.count >= pieceSize {
                try emit(w.bytes)
                w = ByteWriter(capacity: pieceSize + 1024)
            }
        }
        if !w.bytes.isEmpty { try emit(w.bytes) }
    }
}

/// Rebuilds a `KeyValueStore` from the pieces `serialize` wrote, as they come.
public struct KeyValueRestorer {
    private var buffer: [UInt8] = []
    private var remaining: UInt64?
    public private(set) var store = KeyValueStore()
    /// Bytes consumed so far, for error messages.
    public private(set) var offset = 0

    public init() {}

    /// The longest key or value a pair may declare: a length beyond it is damage, not a pair
    /// still arriving (waiting for it would buffer the rest of the state).
    static let maxLength = 1 << 26

    /// Takes the next piece. A pair cut by the piece's end waits for the next; anything
    /// that does not decode is an error at its offset in the state.
    public mutating func feed(_ piece: [UInt8]) throws(DecodingError) {
        buffer += piece
        var r = ByteReader(buffer)
        if remaining == nil {
            guard r.remaining >= 8 else { return }
            remaining = try r.readUInt64("pair count")
        }
        var consumed = r.offset
        while let left = remaining, left > 0, try Self.pairIsWhole(buffer, at: consumed, stateOffset: offset) {
            do {
                let key = try r.readString("key")
                let value = try r.readString("value")
                store.put(key, value)
            } catch {
                throw DecodingError(offset: offset + error.offset, detail: error.detail)
            }
            remaining = left - 1
            consumed = r.offset
        }
        offset += consumed
        buffer.removeFirst(consumed)
    }

    /// Whether `bytes` hold a whole (key, value) pair at `at`: two length-prefixed strings.
    private static func pairIsWhole(_ bytes: [UInt8], at start: Int, stateOffset: Int) throws(DecodingError) -> Bool {
        var r = ByteReader(bytes[start...])
        for what in ["key", "value"] {
            guard r.remaining >= 4 else { return false }
            var length = r
            let n = Int(try length.readUInt32("\(what) length"))
            guard n <= maxLength else {
                throw DecodingError(offset: stateOffset + start + r.offset, detail: "\(what) length \(n) is over the limit of \(maxLength)")
            }
            guard r.remaining >= 4 + n else { return false }
            _ = try r.readBlob(what)
        }
        return true
    }

    /// The store, once every pair arrived and nothing else did.
    public func finish() throws(DecodingError) -> KeyValueStore {
        if remaining == nil && buffer.isEmpty { return KeyValueStore() }  // an empty state (the bootstrap snapshot)
        guard remaining == 0 else {
            throw DecodingError(offset: offset, detail: "state ends with \(remaining.map(String.init) ?? "an unknown number of") pairs missing")
        }
        guard buffer.isEmpty else { throw DecodingError(offset: offset, detail: "\(buffer.count) bytes after the last pair") }
        return store
    }
}
