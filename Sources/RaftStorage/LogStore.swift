#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Raft

/// The Raft log on disk: a directory of append-only segment files (`LogSegment`) and a
/// small file `base` holding the compaction point (prevIndex, prevTerm).
///
/// - `append` buffers records; `sync` writes them and fsyncs once for all of them (group
///   commit). Nothing appended is durable, and so nothing may be acknowledged, before `sync`
///   returns; `durableIndex` says how far the log is durable.
/// - `truncate(from:)` removes a suffix: it deletes the newer segments, newest first, and
///   cuts the segment holding `from` at that record. Durable on return.
/// - `compact(through:term:)` records the new compaction point atomically in `base`, then
///   deletes the segments that lie wholly before it (or archives them, `Archive`). Durable
///   on return. Never rewrites a
///   segment: the records before the compaction point in the oldest kept segment are
///   skipped when the log is read.
/// - Opening cuts off a torn last record of the newest segment (an append a crash
///   interrupted: it was never synced, so never acknowledged), and refuses with a
///   `StorageError` naming the file and byte offset any other damage: a bad record with
///   good records after it, a bad record in an older segment, an index gap, a term that
///   goes back.
///
/// `log` is the log as the core should see it (`DurableState.log`), kept in memory.
public final class LogStore {
    public struct Options: Sendable {
        /// A new segment is started once the current one holds this many bytes.
        public var segmentSize: Int
        /// Appended bytes held in memory before they are written (still unsynced) to the file.
        public var writeBufferSize: Int
        /// Delete the segments a compaction frees on a thread of the store's own, so that
        /// the caller does not wait while hundreds of megabytes are unlinked. The base file
        /// is written before `compact` returns either way; segments a crash leaves behind are
        /// deleted by the next open, as they are when a crash interrupts a compaction.
        public var removeInBackground: Bool

        /// The active segment is allocated this many bytes at a time ahead of its appends
        /// (zeros, `LogSegment`), so that a sync writes the appended bytes and not also the
        /// file's new size (measured here: an append and fdatasync into allocated space took
        /// 0.6 of the time and CPU of one that grows the file). 0: never.
        public var reserveStep: Int

        public init(segmentSize: Int = 8 << 20, writeBufferSize: Int = 1 << 20, removeInBackground: Bool = false, reserveStep: Int = 1 << 20) {
            self.segmentSize = segmentSize
            self.writeBufferSize = writeBufferSize
            self.removeInBackground = removeInBackground
            self.reserveStep = reserveStep
        }
    }

    /// What opening found and repaired.
    public struct Recovery: Sendable, Hashable, CustomStringConvertible {
        /// The segment whose torn end was cut off, the offset it was cut at, the bytes removed,
        /// and why the bytes were bad.
        public var tornFile: String
        public var tornOffset: UInt64
        public var tornBytes: UInt64
        public var reason: String

        public var description: String {
            "cut a torn record off \(tornFile) at byte \(tornOffset) (\(tornBytes) bytes: \(reason))"
        }
    }

    private struct Segment {
        var firstIndex: LogIndex
        var path: String
        /// Record offsets of the entries in the file (also those before the compaction point).
        var offsets: [UInt64]
        /// Where its records end, once it is not the active segment (`activeSize` is that
        /// of the active one); reserved zeros may follow.
        var end: UInt64
        var lastIndex: LogIndex { firstIndex + LogIndex(offsets.count) - 1 }
    }

    public static let baseFileName = "base"
    static let baseMagic: [UInt8] = Array("RAFTBASE".utf8)

    public let directory: String
    public let options: Options
    /// The log after the compaction point, as durable or about to be (after `sync`).
    public private(set) var log: RaftLog
    /// Every entry up to here (and the compaction point) is durable.
    public private(set) var durableIndex: LogIndex
    /// What opening repaired, if anything.
    public private(set) var recovery: Recovery?

    private var segments: [Segment] = []
    /// The newest segment, open for writing, and where its records end on disk (without
    /// `pending`).
    private var active: File?
    private var activeSize: UInt64 = 0
    /// The active segment's size: `activeSize`, or more when space is reserved after it.
    private var activeAllocated: UInt64 = 0
    /// False once the file system has refused to reserve space.
    private var canReserve = true
    /// Records appended to the active segment and not yet written.
    private var pending: [UInt8] = []
    private var hasUnsynced = false
    private var closed = false
    /// Deletes freed segments when `options.removeInBackground`.
    private let remover: DispatchQueue?

    /// Opens the log in `directory`, creating it if needed.
    public init(directory: String, options: Options = Options()) throws {
        self.directory = directory
        self.options = options
        remover = options.removeInBackground ? DispatchQueue(label: "log segment removal") : nil
        try FileSystem.createDirectory(directory)
        let names = try FileSystem.list(directory)
        for name in names where name.hasSuffix(".tmp") {
            try FileSystem.remove(FileSystem.join(directory, name))
        }
        let (prevIndex, prevTerm) = try Self.readBase(FileSystem.join(directory, Self.baseFileName))
        var found: [(LogIndex, String)] = []
        for name in names {
            if let first = LogSegment.firstIndex(fileName: name) { found.append((first, FileSystem.join(directory, name))) }
        }
        found.sort { $0.0 < $1.0 }

        // Segments that end at or before the compaction point are leftovers of a compaction
        // a crash interrupted: remove them without reading them.
        var live: [(LogIndex, String)] = []
        var removed = false
        for (i, seg) in found.enumerated() {
            if i + 1 < found.count && found[i + 1].0 <= prevIndex + 1 {
                try Archive.retire(seg.1, from: directory)
                removed = true
            } else {
                live.append(seg)
            }
        }

        var entries: [Entry] = []
        var recovery: Recovery?
        var expectedFirst: LogIndex? = nil
        for (i, (nameIndex, path)) in live.enumerated() {
            let isLast = i == live.count - 1
            var scan = try LogSegment.scan(path: path)
            guard scan.firstIndex == nameIndex else {
                throw StorageError(.damaged, file: path, offset: 12, "header says first index \(scan.firstIndex), the file name says \(nameIndex)")
            }
            if let problem = scan.problem {
                guard isLast && scan.looksTorn else {
                    if isLast { throw problem }
                    throw StorageError(problem.kind, file: problem.file, offset: problem.offset, problem.detail + " (in a segment that is not the newest, so not a torn append)")
                }
                let file = try File(path: path, flags: O_WRONLY)
                try file.truncate(to: scan.validEnd)
                try file.sync()
                recovery = Recovery(tornFile: path, tornOffset: scan.validEnd, tornBytes: scan.fileSize - scan.validEnd, reason: problem.detail)
                scan.fileSize = scan.validEnd
                scan.problem = nil
            }
            if let expectedFirst, scan.firstIndex != expectedFirst {
                throw StorageError(.damaged, file: path, offset: 12, "index gap between segments: the previous segment ends at \(expectedFirst - 1), this one starts at \(scan.firstIndex)")
            }
            if i == 0 && scan.firstIndex > prevIndex + 1 {
                throw StorageError(.damaged, file: path, offset: 12, "index gap: the log starts at \(scan.firstIndex) but the compaction point is \(prevIndex), so entries \(prevIndex + 1)..\(scan.firstIndex - 1) are missing")
            }
            if let last = entries.last, let first = scan.entries.first, first.term < last.term {
                throw StorageError(.damaged, file: path, offset: UInt64(LogSegment.headerSize), "term goes back from \(last.term) to \(first.term) at index \(first.index)")
            }
            expectedFirst = scan.lastIndex + 1
            for e in scan.entries where e.index > prevIndex { entries.append(e) }
            segments.append(Segment(firstIndex: scan.firstIndex, path: path, offsets: scan.offsets, end: scan.validEnd))
            if isLast {
                activeSize = scan.validEnd
                activeAllocated = scan.fileSize
            }
        }
        // The newest segment may end at or before the compaction point (compaction past the
        // log's end, interrupted): it is a leftover too.
        if let last = segments.last, last.lastIndex <= prevIndex {
            try FileSystem.remove(last.path)
            segments.removeLast()
            removed = true
            activeSize = 0
            activeAllocated = 0
        }
        if removed { try FileSystem.syncDirectory(directory) }
        if let last = segments.last {
            active = try File(path: last.path, flags: O_WRONLY)
            active?.noteContentEnd(activeSize)
        }
        self.log = RaftLog(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries)
        self.durableIndex = log.lastIndex
        self.recovery = recovery
    }

    /// Whether appends are waiting for `sync`.
    public var needsSync: Bool { hasUnsynced }

    // MARK: Appending

    /// Appends entries, replacing any entries from the first one's index on (the contract of
    /// `Action.appendLog`). Durable only after `sync()`. Throws `.misuse` without writing
    /// anything for entries that would leave a gap, go before the compaction point, or
    /// have decreasing terms.
    public func append(_ entries: [Entry]) throws {
        try checkOpen()
        guard let first = entries.first else { return }
        guard first.index > log.prevIndex else {
            throw StorageError(.misuse, file: directory, "append of index \(first.index) at or before the compaction point \(log.prevIndex)")
        }
        guard first.index <= log.lastIndex + 1 else {
            throw StorageError(.misuse, file: directory, "append of index \(first.index) would leave a gap after \(log.lastIndex)")
        }
        var term = log.term(at: first.index - 1) ?? log.prevTerm
        for (k, e) in entries.enumerated() {
            guard e.index == first.index + LogIndex(k) else {
                throw StorageError(.misuse, file: directory, "appended entries are not consecutive: \(e.index) after \(first.index + LogIndex(k) - 1)")
            }
            guard e.term >= term else {
                throw StorageError(.misuse, file: directory, "appended entry \(e.index) has term \(e.term), below the term \(term) before it")
            }
            term = e.term
        }
        if first.index <= log.lastIndex { try truncate(from: first.index) }
        for e in entries {
            if active == nil || (activeSize + UInt64(pending.count) >= UInt64(options.segmentSize) && !(segments.last?.offsets.isEmpty ?? true)) {
                try startSegment(firstIndex: e.index)
            }
            segments[segments.count - 1].offsets.append(activeSize + UInt64(pending.count))
            LogSegment.appendRecord(e, to: &pending)
            if pending.count >= options.writeBufferSize { try flush() }
        }
        log.append(entries)
        hasUnsynced = true
    }

    /// Makes every append so far durable: writes what is buffered and fsyncs once.
    public func sync() throws {
        guard hasUnsynced else { return }
        try flush()
        try active?.dataSync(length: activeSize)
        hasUnsynced = false
        durableIndex = log.lastIndex
    }

    /// Writes the buffered records to the active segment, without fsync, into space
    /// reserved ahead of them where the file system allows.
    private func flush() throws {
        guard !pending.isEmpty, let active else { return }
        let end = activeSize + UInt64(pending.count)
        if end > activeAllocated && canReserve && options.reserveStep > 0 {
            let target = max(end, activeAllocated + UInt64(options.reserveStep))
            if try active.reserve(from: activeAllocated, to: target) {
                activeAllocated = target
            } else {
                canReserve = false
            }
        }
        try active.write(at: activeSize, pending)
        activeSize = end
        activeAllocated = max(activeAllocated, end)
        pending.removeAll(keepingCapacity: true)
    }

    /// Seals the active segment (durable first, so that only the newest segment can ever
    /// end torn) and starts a new one, created atomically with its header.
    private func startSegment(firstIndex: LogIndex) throws {
        if let sealed = active {
            try flush()
            try sealed.dataSync(length: activeSize)
            if hasUnsynced { durableIndex = log.lastIndex }
            hasUnsynced = false
            // A sealed segment keeps no reserved space. Not synced: if a crash undoes the
            // cut, the zeros after the records read as their end all the same.
            if activeAllocated > activeSize { try sealed.truncate(to: activeSize) }
            segments[segments.count - 1].end = activeSize
            sealed.close()
        }
        // A segment freed by a compaction may bear this very name (an empty one, after a torn
        // first record was cut): its removal must be done before the new file takes the name.
        remover?.sync {}
        let path = FileSystem.join(directory, LogSegment.fileName(firstIndex: firstIndex))
        try FileSystem.writeAtomically(LogSegment.header(firstIndex: firstIndex), to: path)
        active = try File(path: path, flags: O_WRONLY)
        activeSize = UInt64(LogSegment.headerSize)
        activeAllocated = activeSize
        segments.append(Segment(firstIndex: firstIndex, path: path, offsets: [], end: activeSize))
    }

    // MARK: Truncating and compacting

    /// Removes the entries from `index` on; durable on return. Removing past the end does
    /// nothing; removing at or before the compaction point is a `.misuse`.
    public func truncate(from index: LogIndex) throws {
        try checkOpen()
        guard index <= log.lastIndex else { return }
        guard index > log.prevIndex else {
            throw StorageError(.misuse, file: directory, "truncate from \(index) at or before the compaction point \(log.prevIndex)")
        }
        try flush()
        // Newest first, so that a crash part way leaves a shorter log, never a gap.
        while let last = segments.last, last.firstIndex >= index {
            active?.close()
            active = nil
            try FileSystem.remove(last.path)
            try FileSystem.syncDirectory(directory)
            segments.removeLast()
            if let prev = segments.last {
                active = try File(path: prev.path, flags: O_WRONLY)
                active?.noteContentEnd(prev.end)
                activeSize = prev.end
                activeAllocated = (try active?.size()) ?? prev.end
            }
        }
        if var last = segments.last, index <= last.lastIndex {
            let cut = last.offsets[Int(index - last.firstIndex)]
            try active?.truncate(to: cut)
            last.offsets.removeLast(Int(last.lastIndex - index + 1))
            last.end = cut
            segments[segments.count - 1] = last
            activeSize = cut
            activeAllocated = cut
        }
        // Makes the cut durable, and with it any earlier appends not synced yet.
        try active?.sync()
        log.truncate(from: index)
        durableIndex = log.lastIndex
        hasUnsynced = false
    }

    /// Forgets the entries through `index`, whose term is `term` (covered by a durable
    /// snapshot); may be past the log's end, which leaves the log empty after `index`.
    /// Durable on return. Does nothing at or before the current compaction point.
    public func compact(through index: LogIndex, term: Term) throws {
        try checkOpen()
        guard index > log.prevIndex else { return }
        try Self.writeBase(FileSystem.join(directory, Self.baseFileName), prevIndex: index, prevTerm: term)
        var freed: [String] = []
        while let first = segments.first, first.lastIndex <= index {
            if segments.count == 1 {
                // The newest segment lies wholly before the compaction point: drop it, with
                // anything of it still buffered; the next append starts a new segment.
                active?.close()
                active = nil
                pending.removeAll()
                activeSize = 0
                activeAllocated = 0
            }
            freed.append(first.path)
            segments.removeFirst()
        }
        if !freed.isEmpty {
            if let remover {
                let directory = self.directory
                remover.async { [freed] in
                    // A failure leaves a segment wholly before the base: the next open deletes it.
                    for path in freed { try? Archive.retire(path, from: directory) }
                    try? FileSystem.syncDirectory(directory)
                }
            } else {
                for path in freed { try Archive.retire(path, from: directory) }
                try FileSystem.syncDirectory(directory)
            }
        }
        log.compact(through: index, term: term)
        durableIndex = max(durableIndex, index)
        if durableIndex >= log.lastIndex { hasUnsynced = false }
    }

    /// Syncs and closes the files; the store must not be used after.
    public func close() throws {
        guard !closed else { return }
        remover?.sync {}  // the freed segments are gone before the files are closed
        try sync()
        active?.close()
        active = nil
        closed = true
    }

    private func checkOpen() throws {
        if closed { throw StorageError(.misuse, file: directory, "the log store is closed") }
    }

    // MARK: The base file

    /// base: magic `RAFTBASE`, version u32 (1), prevIndex u64, prevTerm u64, CRC-32 u32.
    static func writeBase(_ path: String, prevIndex: LogIndex, prevTerm: Term) throws {
        var w = ByteWriter()
        for b in baseMagic { w.write(b) }
        w.write(UInt32(1))
        w.write(prevIndex)
        w.write(prevTerm)
        w.write(CRC32.of(w.bytes))
        try FileSystem.writeAtomically(w.bytes, to: path)
    }

    static func readBase(_ path: String) throws -> (LogIndex, Term) {
        guard let b = try FileSystem.readFile(path) else { return (0, 0) }
        guard b.count == 32, Array(b[0..<8]) == baseMagic else {
            throw StorageError(.damaged, file: path, offset: 0, "not a log base file (\(b.count) bytes, want 32 starting with RAFTBASE)")
        }
        let v = readBE32(b, 8)
        if v > 1 { throw StorageError(.unsupportedVersion, file: path, offset: 8, "base format version \(v) is newer than this build reads (1)") }
        guard v == 1 else { throw StorageError(.damaged, file: path, offset: 8, "bad base format version \(v)") }
        let stored = readBE32(b, 28)
        let actual = CRC32.of(b[0..<28])
        guard stored == actual else {
            throw StorageError(.damaged, file: path, offset: 28, "checksum mismatch: stored \(hex8(stored)), computed \(hex8(actual))")
        }
        return (readBE64(b, 12), readBE64(b, 20))
    }
}
