import Foundation
import Raft
import Testing
@testable import RaftStorage

/// Each fixture behaves as fixtures/README.md says.
@Suite("Fixtures")
struct FixtureTests {
    static let configuration = Configuration(
        voters: ["n1", "n2", "n3"], addresses: ["n1": "n1.sock", "n2": "n2.sock", "n3": "n3.sock"])
    static let state = Array("alpha=1\nbeta=22\ngamma=333\n".utf8)
    static let entries = [
        Entry(index: 1, term: 1, type: .config, payload: configuration.encoded()),
        Entry(index: 2, term: 1, type: .noop),
        Entry(index: 3, term: 1, type: .command, payload: Array("put alpha 1".utf8)),
        Entry(index: 4, term: 2, type: .noop),
        Entry(index: 5, term: 2, type: .command, payload: Array("put beta 22".utf8)),
        Entry(index: 6, term: 2, type: .command, payload: Array("put gamma 333".utf8)),
    ]
    static let segment = "00000000000000000001.seg"

    @Test func validSnapshot() throws {
        let reader = try SnapshotReader(path: fixture("snapshot-valid.ss"))
        #expect(reader.metadata == SnapshotMetadata(index: 42, term: 3, configuration: Self.configuration, size: fileSize(fixture("snapshot-valid.ss"))))
        #expect(reader.header.headerSize == 146)
        #expect(try readState(reader, piece: 5) == Self.state)
    }

    @Test func snapshotWithABadChecksum() {
        let e = storageError { _ = try SnapshotReader(path: fixture("snapshot-bad-checksum.ss")) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == fixture("snapshot-bad-checksum.ss"))
        #expect(e?.offset == 146)
        #expect(e?.detail.contains("body checksum mismatch") == true)
    }

    @Test func truncatedSnapshot() {
        let e = storageError { _ = try SnapshotReader(path: fixture("snapshot-truncated.ss")) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == fixture("snapshot-truncated.ss"))
        #expect(e?.offset == fileSize(fixture("snapshot-truncated.ss")))
        #expect(e?.detail.contains("truncated") == true)
    }

    @Test func snapshotOfAFutureFormatVersion() {
        let e = storageError { _ = try SnapshotReader(path: fixture("snapshot-future-version.ss")) }
        #expect(e?.kind == .unsupportedVersion)
        #expect(e?.offset == 8)
        #expect(e?.detail.contains("version 2 is newer") == true)
    }

    @Test func goraftSnapshotImports() throws {
        let dir = TempDir("goraft")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let meta = try GoraftSnapshot.importFile(path: fixture("goraft-2_17.ss"), into: store)
        let config = Configuration(voters: ["n1", "n2", "n3"], addresses: [
            "n1": "http://127.0.0.1:4001", "n2": "http://127.0.0.1:4002", "n3": "http://127.0.0.1:4003",
        ])
        #expect(meta.index == 17 && meta.term == 2 && meta.configuration == config)
        #expect(try store.latest() == meta)
        #expect(try readState(store.reader(for: meta)) == Array(#"{"alpha":"1","beta":"22"}"#.utf8))
    }

    @Test func goraftSnapshotWithABadCRC() throws {
        let dir = TempDir("goraft")
        defer { dir.cleanup() }
        let store = try SnapshotStore(directory: dir.path)
        let e = storageError { try GoraftSnapshot.importFile(path: fixture("goraft-bad-crc.ss"), into: store) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == fixture("goraft-bad-crc.ss"))
        #expect(e?.offset == 0)
        #expect(e?.detail.contains("CRC mismatch") == true)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test func validLog() throws {
        let dir = TempDir("fixture")
        defer { dir.cleanup() }
        let store = try LogStore(directory: try copyFixture("log-valid", to: dir))
        #expect(store.log == RaftLog(entries: Self.entries))
        #expect(store.recovery == nil)
        #expect(try LogSegment.scan(path: fixture("log-valid/" + Self.segment)).offsets == [32, 143, 168, 204, 229, 265])
    }

    @Test func logWithATornLastRecord() throws {
        let dir = TempDir("fixture")
        defer { dir.cleanup() }
        let path = try copyFixture("log-torn", to: dir)
        let store = try LogStore(directory: path)
        #expect(store.log == RaftLog(entries: Self.entries))
        #expect(store.recovery?.tornFile == path + "/" + Self.segment)
        #expect(store.recovery?.tornOffset == 303)
        #expect(store.recovery?.tornBytes == 19)
        #expect(fileSize(path + "/" + Self.segment) == 303)
    }

    @Test("Zero bytes after the records (reserved space) are their end, not damage; the next append goes after the records")
    func logWithReservedSpace() throws {
        let dir = TempDir("fixture")
        defer { dir.cleanup() }
        let path = try copyFixture("log-reserved", to: dir)
        let scan = try LogSegment.scan(path: path + "/" + Self.segment)
        #expect(scan.problem == nil)
        #expect(scan.validEnd == 303)
        #expect(scan.reservedBytes == 4096)
        var store: LogStore? = try LogStore(directory: path)
        #expect(store?.log == RaftLog(entries: Self.entries))
        #expect(store?.recovery == nil)
        let seventh = Entry(index: 7, term: 2, type: .command, payload: Array("put delta 4444".utf8))
        try store?.append([seventh])
        try store?.sync()
        try store?.close()
        store = nil
        let reopened = try LogStore(directory: path)
        #expect(reopened.log == RaftLog(entries: Self.entries + [seventh]))
        #expect(try LogSegment.scan(path: path + "/" + Self.segment).offsets.last == 303)
        #expect(fileSize(path + "/" + Self.segment) >= 303 + 4096)
    }

    @Test("A torn record inside reserved space is cut off with the zeros after it")
    func logTornInReservedSpace() throws {
        let dir = TempDir("fixture")
        defer { dir.cleanup() }
        let path = try copyFixture("log-torn-in-reserved", to: dir)
        let store = try LogStore(directory: path)
        #expect(store.log == RaftLog(entries: Self.entries))
        #expect(store.recovery?.tornOffset == 303)
        #expect(store.recovery?.tornBytes == 19 + 4096)
        #expect(fileSize(path + "/" + Self.segment) == 303)
    }

    @Test func logDamagedInTheMiddle() throws {
        let dir = TempDir("fixture")
        defer { dir.cleanup() }
        let path = try copyFixture("log-damaged-middle", to: dir)
        let e = storageError { _ = try LogStore(directory: path) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == path + "/" + Self.segment)
        #expect(e?.offset == 168)
        #expect(e?.detail.contains("record checksum mismatch") == true)
        #expect(fileSize(path + "/" + Self.segment) == 303)
        // A read-only scan (as `harness inspect` does) gives what it could read, then the error.
        let scan = try LogSegment.scan(path: fixture("log-damaged-middle/" + Self.segment))
        #expect(scan.entries == Array(Self.entries.prefix(2)))
        #expect(scan.problem?.offset == 168)
        #expect(!scan.looksTorn)
    }

    @Test func logWithAnIndexGap() throws {
        let dir = TempDir("fixture")
        defer { dir.cleanup() }
        let path = try copyFixture("log-index-gap", to: dir)
        let e = storageError { _ = try LogStore(directory: path) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == path + "/" + Self.segment)
        #expect(e?.offset == 204)
        #expect(e?.detail.contains("index gap: expected index 4, found 5") == true)
    }

    @Test func validMeta() throws {
        #expect(try MetaStore.decode(readBytes(fixture("meta-valid")), file: "meta-valid") == HardState(term: 3, votedFor: "n2"))
    }
}
