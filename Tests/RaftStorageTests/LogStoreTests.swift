import Foundation
import Raft
import Testing
@testable import RaftStorage

@Suite("LogStore")
struct LogStoreTests {
    @Test func appendedEntriesSurviveReopen() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...5, term: 1) + entries(6...9, term: 2))
        try store.sync()
        try store.close()
        let again = try LogStore(directory: dir.path)
        #expect(again.log == RaftLog(entries: entries(1...5, term: 1) + entries(6...9, term: 2)))
        #expect(again.durableIndex == 9)
        #expect(again.recovery == nil)
    }

    @Test func groupCommitAdvancesDurableIndexOnlyAtSync() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        for i in LogIndex(1)...100 { try store.append([Entry(index: i, term: 1, type: .command, payload: payload(i, 1))]) }
        #expect(store.durableIndex == 0)
        #expect(store.needsSync)
        #expect(store.log.lastIndex == 100)
        try store.sync()
        #expect(store.durableIndex == 100)
        #expect(!store.needsSync)
    }

    @Test func unsyncedAppendsAreNotWrittenBeforeSync() throws {
        // Group commit buffers records: without sync, nothing reaches the file (and so a
        // crash cannot leave a half-acknowledged batch).
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...3, term: 1))
        try store.sync()
        let synced = fileSize(dir.join(LogSegment.fileName(firstIndex: 1)))
        try store.append(entries(4...6, term: 1))
        #expect(fileSize(dir.join(LogSegment.fileName(firstIndex: 1))) == synced)
        let reopened = try LogStore(directory: dir.path)
        #expect(reopened.log.lastIndex == 3)
    }

    @Test func segmentsRollAtTheSizeLimit() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path, options: .init(segmentSize: 1000))
        try store.append(entries(1...100, term: 1, size: 50))
        try store.sync()
        let files = segmentFiles(dir.path)
        #expect(files.count > 5)
        #expect(files.first == LogSegment.fileName(firstIndex: 1))
        let again = try LogStore(directory: dir.path, options: .init(segmentSize: 1000))
        #expect(again.log == RaftLog(entries: entries(1...100, term: 1, size: 50)))
    }

    @Test func truncateInsideASegmentThenAppend() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...10, term: 1))
        try store.sync()
        try store.truncate(from: 7)
        #expect(store.log.lastIndex == 6)
        #expect(store.durableIndex == 6)
        try store.append(entries(7...8, term: 2))
        try store.sync()
        let again = try LogStore(directory: dir.path)
        #expect(again.log == RaftLog(entries: entries(1...6, term: 1) + entries(7...8, term: 2)))
    }

    @Test func truncateAcrossSegmentsDeletesNewerSegments() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let options = LogStore.Options(segmentSize: 600)
        let store = try LogStore(directory: dir.path, options: options)
        try store.append(entries(1...60, term: 1, size: 40))
        try store.sync()
        let before = segmentFiles(dir.path).count
        try store.truncate(from: 12)
        #expect(segmentFiles(dir.path).count < before)
        try store.append(entries(12...20, term: 3, size: 40))
        try store.sync()
        let again = try LogStore(directory: dir.path, options: options)
        #expect(again.log == RaftLog(entries: entries(1...11, term: 1, size: 40) + entries(12...20, term: 3, size: 40)))
    }

    @Test func truncateAtASegmentBoundary() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let options = LogStore.Options(segmentSize: 600)
        let store = try LogStore(directory: dir.path, options: options)
        try store.append(entries(1...60, term: 1, size: 40))
        try store.sync()
        let second = try #require(segmentFiles(dir.path).dropFirst().first)
        let boundary = try #require(LogSegment.firstIndex(fileName: second))
        try store.truncate(from: boundary)
        #expect(segmentFiles(dir.path).count == 1)
        try store.append(entries(boundary...boundary + 2, term: 2, size: 40))
        try store.sync()
        let again = try LogStore(directory: dir.path, options: options)
        #expect(again.log == RaftLog(entries: entries(1...boundary - 1, term: 1, size: 40) + entries(boundary...boundary + 2, term: 2, size: 40)))
    }

    @Test func appendOverlappingReplacesTheSuffix() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...10, term: 1))
        try store.sync()
        try store.append(entries(5...6, term: 2))
        try store.sync()
        #expect(store.log.lastIndex == 6)
        let again = try LogStore(directory: dir.path)
        #expect(again.log == RaftLog(entries: entries(1...4, term: 1) + entries(5...6, term: 2)))
    }

    @Test func compactKeepsLaterEntriesAndRecordsThePoint() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let options = LogStore.Options(segmentSize: 500)
        let store = try LogStore(directory: dir.path, options: options)
        try store.append(entries(1...50, term: 2, size: 30))
        try store.sync()
        let before = segmentFiles(dir.path).count
        try store.compact(through: 30, term: 2)
        #expect(segmentFiles(dir.path).count < before)
        #expect(store.log.prevIndex == 30)
        let again = try LogStore(directory: dir.path, options: options)
        #expect(again.log == RaftLog(prevIndex: 30, prevTerm: 2, entries: entries(31...50, term: 2, size: 30)))
        // The oldest kept segment still holds records before the point; they are skipped.
        #expect(LogSegment.firstIndex(fileName: segmentFiles(dir.path)[0])! <= 31)
    }

    @Test func compactWithBackgroundRemovalFreesTheSegmentsByClose() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let options = LogStore.Options(segmentSize: 500, removeInBackground: true)
        let store = try LogStore(directory: dir.path, options: options)
        try store.append(entries(1...50, term: 2, size: 30))
        try store.sync()
        let before = segmentFiles(dir.path)
        try store.compact(through: 30, term: 2)
        #expect(store.log.prevIndex == 30)
        try store.append(entries(51...60, term: 3, size: 30))
        try store.sync()
        try store.close()
        let after = segmentFiles(dir.path)
        #expect(after.count < before.count)
        #expect(after.allSatisfy { name in LogSegment.firstIndex(fileName: name)! > 1 })
        let again = try LogStore(directory: dir.path, options: options)
        #expect(again.log == RaftLog(prevIndex: 30, prevTerm: 2, entries: entries(31...50, term: 2, size: 30) + entries(51...60, term: 3, size: 30)))
    }

    @Test func compactPastTheEndEmptiesTheLog() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...10, term: 1))
        try store.sync()
        try store.compact(through: 100, term: 4)
        #expect(store.log == RaftLog(prevIndex: 100, prevTerm: 4))
        #expect(segmentFiles(dir.path).isEmpty)
        var again = try LogStore(directory: dir.path)
        #expect(again.log == RaftLog(prevIndex: 100, prevTerm: 4))
        try again.append(entries(101...103, term: 5))
        try again.sync()
        again = try LogStore(directory: dir.path)
        #expect(again.log == RaftLog(prevIndex: 100, prevTerm: 4, entries: entries(101...103, term: 5)))
        #expect(segmentFiles(dir.path) == [LogSegment.fileName(firstIndex: 101)])
    }

    @Test func anInterruptedCompactionIsFinishedOnOpen() throws {
        // A crash after the base file was written and before old segments were deleted.
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let options = LogStore.Options(segmentSize: 500)
        let store = try LogStore(directory: dir.path, options: options)
        try store.append(entries(1...40, term: 1, size: 30))
        try store.sync()
        try store.close()
        try LogStore.writeBase(dir.join(LogStore.baseFileName), prevIndex: 25, prevTerm: 1)
        let again = try LogStore(directory: dir.path, options: options)
        #expect(again.log == RaftLog(prevIndex: 25, prevTerm: 1, entries: entries(26...40, term: 1, size: 30)))
        for name in segmentFiles(dir.path).dropFirst() { #expect(LogSegment.firstIndex(fileName: name)! > 26) }

        try LogStore.writeBase(dir.join(LogStore.baseFileName), prevIndex: 90, prevTerm: 3)
        let past = try LogStore(directory: dir.path, options: options)
        #expect(past.log == RaftLog(prevIndex: 90, prevTerm: 3))
        #expect(segmentFiles(dir.path).isEmpty)
    }

    @Test func misuseIsRefusedWithoutWriting() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...5, term: 2))
        try store.sync()
        #expect(storageError { try store.append(entries(7...8, term: 2)) }?.kind == .misuse)
        #expect(storageError { try store.append([Entry(index: 6, term: 1, type: .noop)]) }?.kind == .misuse)
        #expect(storageError { try store.append([Entry(index: 6, term: 2, type: .noop), Entry(index: 8, term: 2, type: .noop)]) }?.kind == .misuse)
        try store.compact(through: 3, term: 2)
        #expect(storageError { try store.truncate(from: 3) }?.kind == .misuse)
        #expect(storageError { try store.append(entries(2...2, term: 2)) }?.kind == .misuse)
        #expect(store.log == RaftLog(prevIndex: 3, prevTerm: 2, entries: entries(4...5, term: 2)))
    }

    @Test func aTornLastRecordIsCutOff() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...5, term: 1))
        try store.sync()
        try store.close()
        let seg = dir.join(LogSegment.fileName(firstIndex: 1))
        // Where the records end (space reserved ahead of appends follows them).
        let good = try LogSegment.scan(path: seg).validEnd
        var record: [UInt8] = []
        LogSegment.appendRecord(entries(6...6, term: 1)[0], to: &record)
        try writeBytes(Array(try readBytes(seg).prefix(Int(good))) + Array(record.prefix(20)), seg)
        let again = try LogStore(directory: dir.path)
        #expect(again.log.lastIndex == 5)
        #expect(again.recovery?.tornOffset == good)
        #expect(again.recovery?.tornBytes == 20)
        #expect(fileSize(seg) == good)
        try again.append(entries(6...7, term: 1))
        try again.sync()
        #expect(try LogStore(directory: dir.path).log == RaftLog(entries: entries(1...7, term: 1)))
    }

    @Test func aZeroFilledTailIsTorn() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...5, term: 1))
        try store.sync()
        try store.close()
        let seg = dir.join(LogSegment.fileName(firstIndex: 1))
        try writeBytes(try readBytes(seg) + [UInt8](repeating: 0, count: 4096), seg)
        #expect(try LogStore(directory: dir.path).log.lastIndex == 5)
    }

    @Test func damageBeforeTheLastRecordIsRefused() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path)
        try store.append(entries(1...5, term: 1))
        try store.sync()
        let offset = try LogSegment.scan(path: dir.join(LogSegment.fileName(firstIndex: 1))).offsets[3]
        try store.close()
        let seg = dir.join(LogSegment.fileName(firstIndex: 1))
        var bytes = try readBytes(seg)
        bytes[Int(offset) + 30] ^= 1
        try writeBytes(bytes, seg)
        let e = storageError { _ = try LogStore(directory: dir.path) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == seg)
        #expect(e?.offset == offset)
        #expect(fileSize(seg) == UInt64(bytes.count))  // nothing was cut
    }

    @Test func aBadRecordInAnOlderSegmentIsRefused() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path, options: .init(segmentSize: 400))
        try store.append(entries(1...40, term: 1, size: 30))
        try store.sync()
        try store.close()
        let first = dir.join(segmentFiles(dir.path)[0])
        var bytes = try readBytes(first)
        bytes.removeLast(5)  // the end of its last record
        try writeBytes(bytes, first)
        let e = storageError { _ = try LogStore(directory: dir.path, options: .init(segmentSize: 400)) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == first)
        #expect(e?.description.contains("not the newest") == true)
    }

    @Test func aMissingSegmentIsAnIndexGap() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path, options: .init(segmentSize: 400))
        try store.append(entries(1...40, term: 1, size: 30))
        try store.sync()
        try store.close()
        let files = segmentFiles(dir.path)
        try FileManager.default.removeItem(atPath: dir.join(files[1]))
        let e = storageError { _ = try LogStore(directory: dir.path) }
        #expect(e?.kind == .damaged)
        #expect(e?.file == dir.join(files[2]))
        #expect(e?.description.contains("index gap") == true)
    }

    @Test func aLogThatStartsAfterTheCompactionPointIsRefused() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let store = try LogStore(directory: dir.path, options: .init(segmentSize: 400))
        try store.append(entries(1...40, term: 1, size: 30))
        try store.sync()
        try store.close()
        try FileManager.default.removeItem(atPath: dir.join(segmentFiles(dir.path)[0]))
        let e = storageError { _ = try LogStore(directory: dir.path) }
        #expect(e?.kind == .damaged)
        #expect(e?.description.contains("entries 1..") == true)
    }
}

@Suite("LogStore against RaftLog")
struct LogStoreModelTests {
    /// Random appends, syncs, truncations, compactions and reopenings, with segments small
    /// enough to roll often: the store's log always equals a `RaftLog` given the same
    /// operations, and so does the log read back after each reopening.
    @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
    func randomOperationsMatchTheModel(seed: UInt64) throws {
        let dir = TempDir("model")
        defer { dir.cleanup() }
        var rng = SeededRandom(seed: seed)
        let options = LogStore.Options(segmentSize: 700, writeBufferSize: 256)
        var store = try LogStore(directory: dir.path, options: options)
        var model = RaftLog()
        var term: Term = 1
        for step in 0..<600 {
            switch rng.next() % 20 {
            case 0..<10:
                let n = LogIndex(1 + rng.next() % 6)
                var first = model.lastIndex + 1
                if rng.next() % 4 == 0 && model.lastIndex > model.prevIndex {
                    first = model.prevIndex + 1 + rng.next() % (model.lastIndex - model.prevIndex)
                    term += 1
                }
                let new = entries(first...first + n - 1, term: term, size: Int(rng.next() % 60))
                try store.append(new)
                model.truncate(from: first)
                model.append(new)
            case 10..<13:
                try store.sync()
                #expect(store.durableIndex == model.lastIndex)
            case 13..<15 where model.lastIndex > model.prevIndex:
                let from = model.prevIndex + 1 + rng.next() % (model.lastIndex - model.prevIndex)
                try store.truncate(from: from)
                model.truncate(from: from)
            case 15..<17:
                let through = model.prevIndex + rng.next() % (model.lastIndex - model.prevIndex + 5)
                let t = model.term(at: through) ?? term
                try store.compact(through: through, term: t)
                model.compact(through: through, term: t)
            default:
                try store.close()
                store = try LogStore(directory: dir.path, options: options)
                #expect(store.recovery == nil)
            }
            #expect(store.log == model, "seed \(seed) step \(step)")
            if store.log != model { return }
        }
        try store.close()
        #expect(try LogStore(directory: dir.path, options: options).log == model)
    }

    // MARK: Space reserved ahead of the appends

    @Test("The active segment holds space reserved ahead of its appends; sealed segments none; all of it reads back")
    func reservedSpace() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        let options = LogStore.Options(segmentSize: 4096, reserveStep: 64 << 10)
        let store = try LogStore(directory: dir.path, options: options)
        for i in LogIndex(1)...400 {
            try store.append([Entry(index: i, term: 1, type: .command, payload: payload(i, 1))])
            try store.sync()
        }
        try store.truncate(from: 390)
        try store.append(entries(390...395, term: 2))
        try store.sync()
        try store.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".seg") }.sorted()
        #expect(names.count > 2)
        for (k, name) in names.enumerated() {
            let path = dir.path + "/" + name
            let scan = try LogSegment.scan(path: path)
            #expect(scan.problem == nil, "\(name)")
            if k < names.count - 1 {
                #expect(scan.reservedBytes == 0, "sealed \(name) keeps \(scan.reservedBytes) reserved bytes")
            }
        }
        let again = try LogStore(directory: dir.path, options: options)
        let want = entries(1...389, term: 1) + entries(390...395, term: 2)
        // Compared entry by entry: a failed #expect on two whole logs takes minutes to diff.
        #expect(again.log.lastIndex == 395)
        #expect(again.log.entries.count == want.count)
        #expect(zip(again.log.entries, want).allSatisfy { $0 == $1 })
        #expect(again.recovery == nil)
    }

    @Test("A power cut takes the unsynced records written into reserved space, also after a reopen")
    func unsyncedRecordsInReservedSpaceAreCut() throws {
        let dir = TempDir("log")
        defer { dir.cleanup() }
        UnsyncedWrites.follow(root: dir.path + "/", skipSync: false)
        defer { UnsyncedWrites.forget(root: dir.path + "/") }
        // A one-byte write buffer: each append reaches the file at once, unsynced.
        let options = LogStore.Options(writeBufferSize: 1)
        var store: LogStore? = try LogStore(directory: dir.path, options: options)
        try store?.append(entries(1...3, term: 1))
        try store?.sync()
        try store?.append(entries(4...5, term: 1))
        _ = UnsyncedWrites.ledger.rollBack(under: dir.path)
        store = nil
        #expect(try LogStore(directory: dir.path, options: options).log == RaftLog(entries: entries(1...3, term: 1)))
        // Reopened, the segment ends in reserved zeros; an unsynced append there goes too.
        store = try LogStore(directory: dir.path, options: options)
        try store?.append(entries(4...4, term: 2))
        _ = UnsyncedWrites.ledger.rollBack(under: dir.path)
        store = nil
        #expect(try LogStore(directory: dir.path, options: options).log == RaftLog(entries: entries(1...3, term: 1)))
    }
}
