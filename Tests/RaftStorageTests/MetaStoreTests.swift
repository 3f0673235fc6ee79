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

    @Test func theJoiningFlagSurvivesReopenAndOtherStatesKeepTheFirstFormat() throws {
        let dir = TempDir("meta")
        defer { dir.cleanup() }
        try MetaStore(directory: dir.path).save(HardState(term: 0, votedFor: nil, joining: true))
        #expect(try MetaStore(directory: dir.path).hardState == HardState(term: 0, votedFor: nil, joining: true))
        #expect(Array(try readBytes(dir.join("meta"))[8..<12]) == [0, 0, 0, 2])
        try MetaStore(directory: dir.path).save(HardState(term: 4, votedFor: "n2"))
        #expect(try MetaStore(directory: dir.path).hardState == HardState(term: 4, votedFor: "n2", joining: false))
        // A state without the flag is written as version 1, as before it existed.
        #expect(Array(try readBytes(dir.join("meta"))[8..<12]) == [0, 0, 0, 1])
        // An unknown flag is damage, at its offset.
        var bytes = MetaStore.encode(HardState(term: 1, joining: true))
        bytes[bytes.count - 5] = 0x03
        let crc = CRC32.of(bytes[0..<(bytes.count - 4)])
        bytes.replaceSubrange((bytes.count - 4)..., with: [UInt8(crc >> 24), UInt8(crc >> 16 & 0xff), UInt8(crc >> 8 & 0xff), UInt8(crc & 0xff)])
        #expect(throws: StorageError.self) { try MetaStore.decode(bytes, file: "m") }
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
