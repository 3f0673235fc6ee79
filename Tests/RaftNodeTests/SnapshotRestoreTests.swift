import Dispatch
import Foundation
import Raft
import RaftStorage
import Testing

@testable import RaftNode
import RaftNodeHost
@testable import RaftNodeMachine
@testable import RaftNodeWire

// SnapshotRestore, in one process: the follower's restore that runs while a snapshot's chunks
// are written. It posts the state only once the file is checked and durable under its final
// name; a damaged transfer posts a failure and installs nothing; a cancel posts nothing.
@Suite("snapshot restore while receiving")
struct SnapshotRestoreTests {
    static let configuration = Configuration(voters: ["n1", "n2", "n3"], addresses: ["n1": "a", "n2": "b", "n3": "c"])

    /// A leader's snapshot of `pairs` pairs of up to 3 KiB values; its raw file bytes.
    static func leaderSnapshot(in dir: String, pairs: Int) throws -> (SnapshotMetadata, [UInt8], KeyValueStore) {
        var store = KeyValueStore()
        var rng = SeededRandom(seed: UInt64(pairs))
        for i in 0..<pairs {
            let length = Int(rng.next() % 3000)
            store.put("key-\(i)", String(repeating: "word\(rng.next() % 97) ", count: length / 8))
        }
        let snapshots = try SnapshotStore(directory: dir + "/leader")
        let writer = try snapshots.create(index: 77, term: 3, configuration: Self.configuration)
        try store.serialize { try writer.write($0) }
        let meta = try writer.finish()
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: snapshots.path(for: meta))))
        return (meta, bytes, store)
    }

    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "restore-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Writes `bytes` through the restore in chunks, as the loop does.
    static func transfer(_ bytes: [UInt8], chunk: Int, _ restore: SnapshotRestore) throws {
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            try restore.write(at: UInt64(offset), Array(bytes[offset..<end]))
            offset = end
        }
    }

    /// The one input the mailbox gets within `seconds` (a safety net), or nil.
    static func outcome(_ mailbox: Mailbox, seconds: Double = 60) -> Input? {
        let deadline = DispatchTime.now() + seconds
        while DispatchTime.now() < deadline {
            if let input = mailbox.take(waitingUntil: .now() + 0.05).first { return input }
        }
        return nil
    }

    @Test("the state arrives whole, after the file is durable under its final name", arguments: [1000, 65_536, 1 << 20])
    func restoresWhileReceiving(chunk: Int) throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (meta, bytes, expected) = try Self.leaderSnapshot(in: dir, pairs: 600)
        let follower = try SnapshotStore(directory: dir + "/follower")
        let receiver = try follower.receive(meta)
        let mailbox = Mailbox()
        let restore = try SnapshotRestore(receiving: receiver, from: "n1", mailbox: mailbox)
        try Self.transfer(bytes, chunk: chunk, restore)
        restore.install()
        guard case let .node(.snapshotRestored(installed, store, _, note)) = Self.outcome(mailbox) else {
            Issue.record("no snapshotRestored")
            return
        }
        #expect(installed == meta)
        #expect(store.digest == expected.digest && store.count == expected.count)
        #expect(store.values == expected.values)
        #expect(note.contains("from n1"))
        #expect(try follower.latest() == meta, "the file is the follower's snapshot now")
        #expect(try FileSystemProbe.files(in: dir + "/follower").allSatisfy { !$0.hasSuffix(".tmp") })
    }

    @Test("a snapshot taken while one is received leaves the receive's temporary file alone")
    func takeDuringReceiveKeepsTheReceive() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (meta, bytes, expected) = try Self.leaderSnapshot(in: dir, pairs: 300)
        let follower = try SnapshotStore(directory: dir + "/follower")
        let receiver = try follower.receive(meta)
        let mailbox = Mailbox()
        let restore = try SnapshotRestore(receiving: receiver, from: "n1", mailbox: mailbox)
        try Self.transfer(Array(bytes[..<(bytes.count / 2)]), chunk: 4096, restore)
        // The node's own take, as its background thread runs it, in the same directory.
        var own = KeyValueStore()
        own.put("mine", "1")
        let taken = try StateFiles.writeSnapshot(own, directory: follower.directory, level: 1, index: 5, term: 1, configuration: Self.configuration)
        #expect(taken.index == 5)
        var offset = bytes.count / 2
        while offset < bytes.count {
            let end = min(bytes.count, offset + 4096)
            try restore.write(at: UInt64(offset), Array(bytes[offset..<end]))
            offset = end
        }
        restore.install()
        guard case let .node(.snapshotRestored(installed, store, _, _)) = Self.outcome(mailbox) else {
            Issue.record("the receive did not install after a take in the same directory")
            return
        }
        #expect(installed == meta)
        #expect(store.digest == expected.digest)
    }

    @Test("a flipped byte in a chunk: a failure is posted and nothing is installed")
    func damagedTransferFails() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (meta, good, _) = try Self.leaderSnapshot(in: dir, pairs: 300)
        for position in [20, good.count / 2, good.count - 3] {  // header, body, zlib trailer / checksum
            var bytes = good
            bytes[position] ^= 0x40
            let follower = try SnapshotStore(directory: dir + "/follower-\(position)")
            let receiver = try follower.receive(meta)
            let mailbox = Mailbox()
            let restore = try SnapshotRestore(receiving: receiver, from: "n1", mailbox: mailbox)
            try Self.transfer(bytes, chunk: 4096, restore)
            restore.install()
            guard case let .node(.snapshotRestoreFailed(failed, reason)) = Self.outcome(mailbox) else {
                Issue.record("byte \(position): no snapshotRestoreFailed")
                continue
            }
            #expect(failed == meta)
            #expect(!reason.isEmpty)
            #expect(try follower.latest() == nil, "byte \(position): nothing installed")
            #expect(try FileSystemProbe.files(in: dir + "/follower-\(position)").isEmpty, "byte \(position): the temporary file is gone")
        }
    }

    @Test("a cancelled receive posts nothing and leaves no file")
    func cancelPostsNothing() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (meta, bytes, _) = try Self.leaderSnapshot(in: dir, pairs: 300)
        let follower = try SnapshotStore(directory: dir + "/follower")
        let receiver = try follower.receive(meta)
        let mailbox = Mailbox()
        let restore = try SnapshotRestore(receiving: receiver, from: "n1", mailbox: mailbox)
        try Self.transfer(Array(bytes.prefix(bytes.count / 2)), chunk: 4096, restore)
        restore.cancel()
        #expect(Self.outcome(mailbox, seconds: 1) == nil, "nothing posted")
        #expect(try follower.latest() == nil)
        #expect(try FileSystemProbe.files(in: dir + "/follower").isEmpty, "the temporary file is gone")
    }
}

/// File names in a directory (none if it does not exist).
enum FileSystemProbe {
    static func files(in dir: String) throws -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    }
}
