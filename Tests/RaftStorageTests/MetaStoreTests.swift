import Foundation
import Raft
import Testing
@testable import RaftStorage

@Suite("MetaStore")
struct MetaStoreTests {
    @Test func aNewDirectoryHasTermZeroAndNoVote() throws {
        let dir = TempDir("meta")
        defer { dir.cleanup() }
        #expect(try MetaStore(directory: dir.path).hardState == HardState())
    }

    @Test func savedStateSurvivesReopenAndNoTemporaryFileStays() throws {
        let dir = TempDir("meta")
        defer { dir.cleanup() }
        let store = try MetaStore(directory: dir.path)
        try store.save(HardState(term: 7, votedFor: "n3"))
        try store.save(HardState(term: 8, votedFor: nil))
        #expect(try MetaStore(directory: dir.path).hardState == HardState(term: 8, votedFor: nil))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["meta"])
    }

    @Test func aDamagedMetaFileIsRefusedWithItsOffset() throws {
        let dir = TempDir("meta")
        defer { dir.cleanup() }
        try MetaStore(directory: dir.path).save(HardState(term: 5, votedFor: "n1"))
        var bytes = try readBytes(dir.join("meta"))
        bytes[19] ^= 0x40  // inside the term
        try writeBytes(bytes, dir.join("meta"))
        let e = storageError { _ = try MetaStore(directory: dir.path) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == dir.join("meta"))
        #expect(e?.offset == UInt64(bytes.count - 4))
        #expect(e?.description.contains("checksum mismatch") == true)
    }

    @Test func aTruncatedMetaFileIsRefused() throws {
        let dir = TempDir("meta")
        defer { dir.cleanup() }
        try MetaStore(directory: dir.path).save(HardState(term: 5, votedFor: "n1"))
        try writeBytes(Array(try readBytes(dir.join("meta")).prefix(20)), dir.join("meta"))
        #expect(storageError { _ = try MetaStore(directory: dir.path) }?.kind == .damaged)
    }
}
