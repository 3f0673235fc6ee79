import Dispatch
import Foundation
import Raft
import RaftNodeMachine
import RaftStorage

/// Restores a snapshot while it is being received, so that the restore overlaps the
/// transfer rather than following it.
///
/// It owns the `SnapshotReceiver`: the loop writes each chunk through `write(at:_:)`, into
/// the receiver's temporary file. Two threads follow the file: the first reads what has
/// been written (from the page cache, through a descriptor of its own) and inflates it with a `SnapshotStreamDecoder`
/// (which also checks the header and the body's checksum); the second parses the state
/// pieces into a `KeyValueStore`. Between them, a queue of at most `maxQueued` pieces: the
/// memory used grows with the piece size, never with the state.
///
/// When the core says install, the loop calls `install()` and writes no more; once both
/// threads are through and everything checked, the second thread makes the file durable
/// under its final name (`install(bodyVerified:)`: fsync, rename, directory fsync) and only
/// then posts `.snapshotRestored`. Any failure posts `.snapshotRestoreFailed` instead: the
/// node never takes a state from a file that is not durable and whole. Exactly one of the two
/// is posted after `install()` unless `cancel()` comes first; a cancel after the file was
/// renamed into place is too late to undo it (the node is stopping: a crash there is the same).
final class SnapshotRestore: @unchecked Sendable {
    let metadata: SnapshotMetadata
    /// The leader it comes from.
    let from: NodeID
    private let mailbox: Mailbox
    private let started = DispatchTime.now()
    /// The loop's until `install()`, the second thread's after.
    private let receiver: SnapshotReceiver
    static let maxQueued = 8
    // The inflate thread's alone.
    private let bytes: SnapshotReceivedBytes
    private let decoder: SnapshotStreamDecoder

    // Shared between the loop and the two threads, under `condition`.
    private let condition = NSCondition()
    private var written: UInt64 = 0
    private var cancelled = false
    private var failure: String?
    private var pieces: [[UInt8]] = []
    private var inflated = false
    /// Set by `install()`: every chunk is written.
    private var lastChunkAt: DispatchTime?

    /// Starts following `receiver`'s file, a transfer that begins now; the restore owns the
    /// receiver from here on (if this throws, the caller still does).
    init(receiving receiver: SnapshotReceiver, from: NodeID, mailbox: Mailbox) throws {
        metadata = receiver.metadata
        self.receiver = receiver
        self.mailbox = mailbox
        self.from = from
        bytes = try receiver.openForReading()
        decoder = try SnapshotStreamDecoder(expected: receiver.metadata, path: receiver.tempPath)
        let inflate = Thread { [self] in inflateLoop() }
        inflate.name = "snapshot inflate"
        inflate.start()
        let parse = Thread { [self] in parseLoop() }
        parse.name = "snapshot restore"
        parse.start()
    }

    /// Writes a chunk at `offset` of the file (the loop, before `install()`); the threads
    /// follow what is written.
    func write(at offset: UInt64, _ data: [UInt8]) throws {
        try receiver.write(at: offset, data)
        condition.lock()
        written = max(written, receiver.received)
        condition.broadcast()
        condition.unlock()
    }

    /// Every chunk is written: finish, check, install and post the outcome.
    func install() {
        condition.lock()
        lastChunkAt = .now()
        condition.broadcast()
        condition.unlock()
    }

    /// The receive is abandoned: stop, post nothing, and (before `install()`) discard the
    /// file. After `install()` the second thread discards it, unless it is already renamed.
    func cancel() {
        condition.lock()
        cancelled = true
        pieces.removeAll()
        let installing = lastChunkAt != nil
        condition.broadcast()
        condition.unlock()
        if !installing { receiver.abort() }
    }

    private var isCancelled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return cancelled
    }

    private func fail(_ reason: String) {
        condition.lock()
        if failure == nil { failure = reason }
        pieces.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    // MARK: Thread 1: read what is written, inflate, check

    private func inflateLoop() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var offset: UInt64 = 0
        while true {
            condition.lock()
            while !cancelled && failure == nil && offset >= written && lastChunkAt == nil {
                condition.wait()
            }
            let stop = cancelled || failure != nil
            let end = written
            condition.unlock()
            if stop { break }
            do {
                if offset < end {
                    let want = Int(min(UInt64(buffer.count), end - offset))
                    let n = try bytes.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
                    guard n == want else { throw NodeError("\(bytes.path): \(want) bytes written at \(offset), \(n) read back") }
                    try decoder.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) { try push(Array($0)) }
                    offset += UInt64(n)
                } else {
                    // Installing, and every byte written is read: the end (finish refuses a
                    // file shorter than announced).
                    _ = try decoder.finish { try push(Array($0)) }
                    break
                }
            } catch is Cancelled {
                break
            } catch {
                fail("\(error)")
                break
            }
        }
        condition.lock()
        inflated = true
        condition.broadcast()
        condition.unlock()
    }

    private struct Cancelled: Error {}

    /// Queues a piece for the parser, waiting while the queue is full.
    private func push(_ piece: [UInt8]) throws {
        condition.lock()
        defer { condition.unlock() }
        while pieces.count >= Self.maxQueued && !cancelled && failure == nil { condition.wait() }
        guard !cancelled && failure == nil else { throw Cancelled() }
        pieces.append(piece)
        condition.broadcast()
    }

    // MARK: Thread 2: parse the state, then install and post

    private func parseLoop() {
        var restorer = KeyValueRestorer()
        while true {
            condition.lock()
            while pieces.isEmpty && !inflated && !cancelled { condition.wait() }
            if cancelled {
                condition.unlock()
                return
            }
            guard !pieces.isEmpty else {
                condition.unlock()
                break  // inflated: every piece is in
            }
            let piece = pieces.removeFirst()
            condition.broadcast()
            condition.unlock()
            do {
                try restorer.feed(piece)
            } catch {
                fail("the state does not decode: \(error.detail) at byte \(error.offset) of the state")
            }
        }
        // Both threads are through. Wait for the install (or a cancel) before the outcome.
        condition.lock()
        while lastChunkAt == nil && !cancelled { condition.wait() }
        let failure = self.failure
        let installAsked = self.lastChunkAt
        let cancelledNow = cancelled
        condition.unlock()
        guard !cancelledNow, let lastChunkAt = installAsked else {
            if installAsked != nil { receiver.abort() }  // else cancel() did
            return
        }
        if let failure {
            receiver.abort()
            mailbox.post(.node(.snapshotRestoreFailed(metadata, failure)))
            return
        }
        do {
            let store = try restorer.finish()
            let decoded = DispatchTime.now()
            // The node stopping meanwhile cancels: leave the file unrenamed, as a crash would.
            if isCancelled {
                receiver.abort()
                return
            }
            let installed = try receiver.install(bodyVerified: true)
            let ms = NodeLoop.ms(since: started)
            let note = "snapshot \(installed.index) (term \(installed.term), \(installed.size) bytes) from \(from): "
                + "last chunk after \(Self.ms(started, lastChunkAt)) ms, state restored \(Self.ms(lastChunkAt, decoded)) ms "
                + "after the last chunk, file durable \(NodeLoop.ms(since: decoded)) ms after that; \(ms) ms in all"
            mailbox.post(.node(.snapshotRestored(installed, store, ms: ms, note: note)))
        } catch let error as DecodingError {
            receiver.abort()
            mailbox.post(.node(.snapshotRestoreFailed(metadata, "the state does not decode: \(error.detail) at byte \(error.offset) of the state")))
        } catch {
            receiver.abort()
            mailbox.post(.node(.snapshotRestoreFailed(metadata, "\(error)")))
        }
    }

    static func ms(_ from: DispatchTime, _ to: DispatchTime) -> Int {
        to.uptimeNanoseconds > from.uptimeNanoseconds ? Int((to.uptimeNanoseconds - from.uptimeNanoseconds) / 1_000_000) : 0
    }
}
