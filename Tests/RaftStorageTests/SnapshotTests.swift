import Foundation
import Raft
import Testing
@testable import RaftStorage

let threeNodes = Configuration(voters: ["n1", "n2", "n3"], addresses: ["n1": "a1", "n2": "a2", "n3": "a3"])

/// Deterministic state bytes: key-value lines, compressible like real state.
func stateBytes(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(count + 64)
    var i = seed
    while out.count < count {
        out += Array("key-\(i)=value-\(i &* 2654435761 % 1_000_003)\n".utf8)
        i += 1
    }
    return Array(out.prefix(count))
}

func writeSnapshot(_ store: SnapshotStore, index: LogIndex, term: Term, state: [UInt8], piece: Int = 1000) throws -> SnapshotMetadata {
    let w = try store.create(index: index, term: term, configuration: threeNodes)
    var i = 0
    while i < state.count {
        try w.write(state[i..<min(state.count, i + piece)])
        i += piece
    }
    return try w.finish()
}

func readState(_ reader: SnapshotReader, piece: Int = 777) throws -> [UInt8] {
    var out: [UInt8] = []
    try reader.forEachPiece(maxBytes: piece) { p in
        #expect(p.count <= piece && !p.isEmpty)
        out += p
    }
    return out
}

@Suite("Snapshots")
struct SnapshotTests {
    @Test func streamedStateReadsBackInPieces() throws {
        let dir = TempDir("snap")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let state = stateBytes(300_000)
        let meta = try writeSnapshot(store, index: 120, term: 4, state: state)
        #expect(meta.index == 120 && meta.term == 4 && meta.configuration == threeNodes)
        #expect(meta.size == fileSize(store.path(for: meta)))
        #expect(meta.size < UInt64(state.count) / 2)  // compressed
        #expect(try store.fileNames() == ["00000000000000000004_00000000000000000120.ss"])
        let reader = try store.reader(for: meta)
        #expect(reader.header.stateSize == UInt64(state.count))
        #expect(try readState(reader) == state)
        #expect(try store.latest() == meta)
    }

    @Test func anEmptyStateAndTheBootstrapSnapshotAtIndexZero() throws {
        let dir = TempDir("snap")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        #expect(try store.latest() == nil)
        let meta = try store.bootstrap(threeNodes)
        #expect(meta.index == 0 && meta.term == 0 && meta.configuration == threeNodes)
        #expect(try store.latest() == meta)
        #expect(try store.reader(for: meta).read() == nil)
        #expect(try store.fileNames() == ["00000000000000000000_00000000000000000000.ss"])
    }

    @Test func aNewerSnapshotReplacesTheOlderOnlyWhenDurable() throws {
        let dir = TempDir("snap")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let old = try writeSnapshot(store, index: 9, term: 2, state: stateBytes(5000))
        let w = try store.create(index: 100, term: 3, configuration: threeNodes)
        try w.write(stateBytes(5000, seed: 9))
        // While the new one is being written the old one is there, and is the latest.
        #expect(try store.latest() == old)
        #expect(try store.fileNames() == [SnapshotHeader.fileName(index: 9, term: 2)])
        let new = try w.finish()
        #expect(try store.latest() == new)
        #expect(try store.fileNames() == [SnapshotHeader.fileName(index: 100, term: 3)])
    }

    @Test func namesSortByAgeWithManyDigits() {
        // goraft sorted "2_9.ss" after "2_10.ss"; zero-padded names sort as numbers.
        let names = [(9, 2), (10, 2), (100, 2), (7, 3)].map { SnapshotHeader.fileName(index: LogIndex($0.0), term: Term($0.1)) }
        #expect(names == names.sorted())
        #expect(SnapshotHeader.parseFileName(names[1])! == (term: 2, index: 10))
        #expect(SnapshotHeader.parseFileName("2_10.ss") == nil)
    }

    @Test func cancelLeavesNothingAndOldSnapshotStays() throws {
        let dir = TempDir("snap")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let old = try writeSnapshot(store, index: 5, term: 1, state: stateBytes(100))
        let w = try store.create(index: 6, term: 1, configuration: threeNodes)
        try w.write(stateBytes(100))
        w.cancel()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == [SnapshotHeader.fileName(index: 5, term: 1)])
        #expect(try store.latest() == old)
    }

    @Test func temporaryFilesOfACrashAreRemovedOnOpen() throws {
        let dir = TempDir("snap")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let w = try store.create(index: 6, term: 1, configuration: threeNodes)
        try w.write(stateBytes(100))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).count == 1)
        _ = try SnapshotStore(directory: dir.path)  // as after a crash
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
        w.cancel()
    }

    @Test func rawChunksTransferToAReceiverAndInstall() throws {
        let leaderDir = TempDir("leader")
        let followerDir = TempDir("follower")
        defer { leaderDir.cleanup(); followerDir.cleanup() }
        let leader = try SnapshotStore(directory: leaderDir.path)
        let follower = try SnapshotStore(directory: followerDir.path)
        let old = try writeSnapshot(follower, index: 3, term: 1, state: stateBytes(100))
        let state = stateBytes(200_000, seed: 77)
        let meta = try writeSnapshot(leader, index: 500, term: 6, state: state)
        let receiver = try follower.receive(meta)
        let source = try leader.openFile(meta)
        var offset: UInt64 = 0
        while offset < meta.size {
            let chunk = try source.read(offset: offset, length: 4096)
            try receiver.write(at: offset, chunk)
            offset += UInt64(chunk.count)
        }
        #expect(try follower.latest() == old)
        #expect(try receiver.install() == meta)
        #expect(try follower.latest() == meta)
        #expect(try follower.fileNames() == [SnapshotHeader.fileName(index: 500, term: 6)])
        #expect(try readBytes(follower.path(for: meta)) == readBytes(leader.path(for: meta)))
        #expect(try readState(follower.reader(for: meta)) == state)
    }

    @Test func aCorruptedTransferIsRefusedAtInstall() throws {
        let leaderDir = TempDir("leader")
        let followerDir = TempDir("follower")
        defer { leaderDir.cleanup(); followerDir.cleanup() }
        let leader = try SnapshotStore(directory: leaderDir.path)
        let follower = try SnapshotStore(directory: followerDir.path)
        let old = try writeSnapshot(follower, index: 3, term: 1, state: stateBytes(100))
        let meta = try writeSnapshot(leader, index: 500, term: 6, state: stateBytes(50_000))
        let receiver = try follower.receive(meta)
        var bytes = try leader.readChunk(of: meta, offset: 0, length: Int(meta.size))
        bytes[bytes.count - 100] ^= 0x55
        try receiver.write(at: 0, bytes)
        let e = storageError { _ = try receiver.install() }
        #expect(e?.kind == .damaged)
        #expect(e?.description.contains("body checksum mismatch") == true)
        #expect(try follower.latest() == old)
        #expect(try FileManager.default.contentsOfDirectory(atPath: followerDir.path) == [SnapshotHeader.fileName(index: 3, term: 1)])
    }

    @Test func aTransferOfADifferentSnapshotIsRefused() throws {
        let leaderDir = TempDir("leader")
        let followerDir = TempDir("follower")
        defer { leaderDir.cleanup(); followerDir.cleanup() }
        let leader = try SnapshotStore(directory: leaderDir.path)
        let follower = try SnapshotStore(directory: followerDir.path)
        let meta = try writeSnapshot(leader, index: 500, term: 6, state: stateBytes(1000))
        var announced = meta
        announced.term = 7
        let receiver = try follower.receive(announced)
        try receiver.write(at: 0, try leader.readChunk(of: meta, offset: 0, length: Int(meta.size)))
        #expect(storageError { _ = try receiver.install() }?.kind == .damaged)
        #expect(try follower.latest() == nil)
    }

    @Test func aChunkPastTheAnnouncedSizeIsRefused() throws {
        let dir = TempDir("follower")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let receiver = try store.receive(SnapshotMetadata(index: 1, term: 1, configuration: threeNodes, size: 100))
        #expect(storageError { try receiver.write(at: 90, [UInt8](repeating: 1, count: 20)) }?.kind == .misuse)
        receiver.abort()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func corruptCompressedDataIsFoundWhileReadingEvenWithoutTheChecksumPass() throws {
        let dir = TempDir("snap")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let meta = try writeSnapshot(store, index: 8, term: 1, state: stateBytes(100_000))
        let path = store.path(for: meta)
        var bytes = try readBytes(path)
        let header = try SnapshotHeader.read(path: path)
        for k in 0..<64 { bytes[header.headerSize + 40 + k] ^= 0xa5 }
        try writeBytes(bytes, path)
        #expect(storageError { _ = try SnapshotReader(path: path) }?.description.contains("body checksum mismatch") == true)
        let reader = try SnapshotReader(path: path, verifyBody: false)
        let e = storageError { _ = try readState(reader) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == path)
        #expect((e?.offset ?? 0) >= UInt64(header.headerSize))
    }

    @Test func nodeStorageLoadsTheDurableStateAndPersistsActions() throws {
        let dir = TempDir("node")
        defer { dir.cleanup() }
        var node = try NodeStorage(directory: dir.path)
        #expect(try node.durableState() == DurableState())
        let boot = try node.snapshots.bootstrap(threeNodes)
        try node.persist(.saveHardState(HardState(term: 2, votedFor: "n1")))
        try node.persist(.appendLog(entries(1...4, term: 2)))
        #expect(try node.persist(.apply([])) == false)
        try node.sync()
        try node.persist(.truncateLog(from: 4))
        try node.persist(.compactLog(through: 2, term: 2))
        try node.close()
        node = try NodeStorage(directory: dir.path)
        let state = try node.durableState()
        #expect(state.hardState == HardState(term: 2, votedFor: "n1"))
        #expect(state.snapshot == boot)
        #expect(state.log == RaftLog(prevIndex: 2, prevTerm: 2, entries: entries(3...3, term: 2)))
    }
}

@Suite("Snapshot receive restarts")
struct SnapshotReceiveRestartTests {
    @Test func aReceiveStartedAgainIsNotDeletedByTheOneItReplaces() throws {
        let leaderDir = TempDir("leader")
        let followerDir = TempDir("follower")
        defer { leaderDir.cleanup(); followerDir.cleanup() }
        let leader = try SnapshotStore(directory: leaderDir.path)
        let follower = try SnapshotStore(directory: followerDir.path)
        let meta = try writeSnapshot(leader, index: 50, term: 2, state: stateBytes(20_000))
        var first: SnapshotReceiver? = try follower.receive(meta)
        try first?.write(at: 0, try leader.readChunk(of: meta, offset: 0, length: 100))
        let second = try follower.receive(meta)
        first = nil  // the shell drops the old receive
        try second.write(at: 0, try leader.readChunk(of: meta, offset: 0, length: Int(meta.size)))
        #expect(try second.install() == meta)
        #expect(try follower.fileNames() == [SnapshotHeader.fileName(index: 50, term: 2)])
    }

    @Test func aClosedLogStoreRefusesWork() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...2, term: 1))
        try store.close()
        #expect(storageError { try store.append(entries(3...3, term: 1)) }?.kind == .misuse)
        #expect(segmentFiles(dir.path) == [LogSegment.fileName(firstIndex: 1)])
    }
}
