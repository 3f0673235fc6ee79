import Foundation
import Raft
import Testing
@testable import RaftStorage

/// A follower decodes a snapshot while it arrives: the raw file bytes in order, in pieces
/// of any size. It must give back exactly what `SnapshotReader` gives and refuse exactly
/// what it refuses, naming the file and the offset.
@Suite("Snapshot stream decoder")
struct SnapshotStreamDecoderTests {
    /// Feeds `raw` in pieces of the sizes `sizes` yields (cycled); returns the state bytes
    /// and the sizes of the pieces emitted, or throws what the decoder threw.
    static func decode(_ raw: [UInt8], expected: SnapshotMetadata, path: String = "x.ss", pieceSize: Int = 4096, sizes: [Int]) throws -> (state: [UInt8], pieces: [Int], header: SnapshotHeader) {
        let decoder = try SnapshotStreamDecoder(expected: expected, path: path, pieceSize: pieceSize)
        var state: [UInt8] = []
        var pieces: [Int] = []
        let emit: (UnsafeRawBufferPointer) throws -> Void = { p in
            state += p
            pieces.append(p.count)
        }
        var offset = 0
        var k = 0
        while offset < raw.count {
            let n = min(sizes[k % sizes.count], raw.count - offset)
            k += 1
            try raw[offset..<offset + n].withUnsafeBytes { try decoder.feed($0, emit: emit) }
            offset += n
            #expect(decoder.consumed == UInt64(offset))
        }
        let header = try decoder.finish(emit: emit)
        return (state, pieces, header)
    }

    @Test("the valid fixture decodes to its state, whatever the sizes of the pieces fed", arguments: [[1], [5, 3], [146], [147, 1], [1 << 20]])
    func validFixture(sizes: [Int]) throws {
        let path = fixture("snapshot-valid.ss")
        let raw = try readBytes(path)
        let meta = try SnapshotHeader.read(path: path).metadata
        let r = try Self.decode(raw, expected: meta, path: path, sizes: sizes)
        #expect(r.state == FixtureTests.state)
        #expect(r.header.metadata == meta)
    }

    @Test("a larger state comes back whole, in full pieces but the last, for seeded random feeds", arguments: 1...8)
    func largerState(seed: UInt64) throws {
        let dir = TempDir("decoder")
        defer { dir.cleanup() }
        let state = stateBytes(700_000, seed: seed)
        let store = try SnapshotStore(directory: dir.path)
        let meta = try writeSnapshot(store, index: 9, term: 2, state: state, piece: 10_000)
        let raw = try readBytes(store.path(for: meta))
        var rng = SeededRandom(seed: seed)
        let sizes = (0..<50).map { _ in 1 + Int(rng.next() % 70_000) }
        let r = try Self.decode(raw, expected: meta, pieceSize: 65_536, sizes: sizes)
        #expect(r.state == state)
        #expect(r.pieces.dropLast().allSatisfy { $0 == 65_536 })
        #expect((r.pieces.last ?? 0) > 0 && (r.pieces.last ?? 0) <= 65_536)
        // The same as the reader of the installed file gives.
        #expect(try readState(store.reader(for: meta)) == state)
    }

    @Test("a flipped body byte is refused, naming the file")
    func badChecksum() throws {
        let path = fixture("snapshot-bad-checksum.ss")
        let raw = try readBytes(path)
        let meta = try SnapshotHeader.read(path: path).metadata
        let e = storageError { _ = try Self.decode(raw, expected: meta, path: path, sizes: [10]) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == path)
        // zlib may see the corruption first (an offset in the body), else the checksum does.
        #expect(e.map { ($0.offset ?? 0) >= 146 && ($0.offset ?? .max) <= UInt64(raw.count) } == true)
        #expect(e.map { $0.detail.contains("checksum") || $0.detail.contains("corrupt") } == true)
    }

    @Test("a file that stops early is refused at finish, at the offset where the bytes stop")
    func truncated() throws {
        let raw = try readBytes(fixture("snapshot-truncated.ss"))
        let meta = try SnapshotHeader.read(path: fixture("snapshot-valid.ss")).metadata
        let e = storageError { _ = try Self.decode(raw, expected: meta, sizes: [7]) }
        #expect(e?.kind == .damaged)
        #expect(e?.offset == UInt64(raw.count))
        #expect(e?.detail.contains("truncated") == true)
    }

    @Test("more bytes than announced are refused")
    func tooLong() throws {
        let raw = try readBytes(fixture("snapshot-valid.ss"))
        let meta = try SnapshotHeader.read(path: fixture("snapshot-valid.ss")).metadata
        let e = storageError { _ = try Self.decode(raw + [0], expected: meta, sizes: [1 << 20]) }
        #expect(e?.kind == .damaged)
        #expect(e?.offset == meta.size)
    }

    @Test("a header for another snapshot than the one announced is refused at its first field")
    func otherSnapshot() throws {
        let raw = try readBytes(fixture("snapshot-valid.ss"))
        var meta = try SnapshotHeader.read(path: fixture("snapshot-valid.ss")).metadata
        meta.index += 1
        let e = storageError { _ = try Self.decode(raw, expected: meta, sizes: [1000]) }
        #expect(e?.kind == .damaged)
        #expect(e?.offset == 16)
    }

    @Test("a future format version is refused at the version field")
    func futureVersion() throws {
        let raw = try readBytes(fixture("snapshot-future-version.ss"))
        let meta = try SnapshotHeader.read(path: fixture("snapshot-valid.ss")).metadata
        let e = storageError { _ = try Self.decode(raw, expected: meta, sizes: [3]) }
        #expect(e?.kind == .unsupportedVersion)
        #expect(e?.offset == 8)
    }
}
