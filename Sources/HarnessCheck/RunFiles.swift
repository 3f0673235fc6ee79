// HarnessCheck reads a finished (or running) run directory and judges it (SPEC section 3),
// and prints a node's files for `harness inspect` (SPEC section 6). It reads files only:
// no process, socket or clock is involved, so `harness check RUN_DIR` gives the verdict the
// run gave.
//
//   RunFiles.swift        reading a run directory: each node's meta, snapshot, log and
//                         events, history.jsonl and the `converged` lines of harness.log
//   RunChecker.swift      the five checks of SPEC section 3, and what exactly each verifies
//   Inspect.swift         `harness inspect PATH [--json]`
//   NodeDataWriter.swift  writes node data dirs with the real storage code (fixtures, tests)

import Foundation
import Raft
import RaftNodeMachine
import RaftNodeWire
import RaftStorage

/// Something wrong with a file of the run: damaged bytes, an unreadable line, files that
/// contradict each other. `file` is relative to the run directory.
public struct FileProblem: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// Byte offset in `file`, when there is one.
    public var offset: UInt64?
    public var detail: String

    public init(file: String, offset: UInt64? = nil, _ detail: String) {
        self.file = file
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        var s = file
        if let offset { s += " at byte \(offset)" }
        return s + ": " + detail
    }
}

/// A log entry as found in a segment file, with where it is.
struct LoggedEntry {
    var entry: Entry
    var file: String
    var offset: UInt64
    var digest: UInt64
    var index: LogIndex { entry.index }
    var term: Term { entry.term }
    var place: String { "\(file) at byte \(offset)" }
}

/// A snapshot file of a node: its newest, or one in its archive.
struct SnapshotInfo {
    var index: LogIndex
    var term: Term
    var configuration: Configuration
    var file: String
    var bytes: UInt64
    /// The state, nil when the file or its state could not be read (a problem says why).
    var state: KeyValueStore?
}

/// One line of a node's events.jsonl, with the fields the checker uses.
/// One line of a node's events.jsonl: its line number, and the event as the wire module
/// reads it (the node writes it with the same type).
struct LoggedEvent {
    var line: Int
    var term: Term
    var event: NodeEvent
    /// Its `ts` (Unix microseconds), when the line has a readable one.
    var ts: Int64?

    var isLeader: Bool { if case .role("leader", _) = event { true } else { false } }

    /// The commit index a `commit` or a `start` reports.
    var reportedCommit: LogIndex? {
        switch event {
        case let .commit(index): index
        case let .start(_, commitIndex, _): commitIndex
        default: nil
        }
    }

    /// A `start` with empty data: the node's first, or its first after a wipe.
    var isStartOfWipedData: Bool { if case .start(0, 0, 0) = event { true } else { false } }
}

/// What a node's data dir holds.
struct NodeFiles {
    var name: String
    /// `nodes/NAME`.
    var dir: String
    var hardState: HardState?
    var prevIndex: LogIndex = 0
    var prevTerm: Term = 0
    /// The log after the compaction point, consecutive from prevIndex + 1.
    var entries: [LoggedEntry] = []
    var snapshot: SnapshotInfo?
    /// What `archive/` keeps (SPEC section 3), with the records of the oldest live segment
    /// before the compaction point: entries compacted away, all committed (a compaction
    /// drops only a prefix that a snapshot covers), by index; and superseded snapshots.
    var archivedEntries: [LoggedEntry] = []
    var archivedSnapshots: [SnapshotInfo] = []
    /// Every snapshot file the node's files hold: the archived ones, then the newest.
    var allSnapshots: [SnapshotInfo] { archivedSnapshots + (snapshot.map { [$0] } ?? []) }
    var events: [LoggedEvent] = []
    var eventsFile: String { dir + "/events.jsonl" }
    var problems: [FileProblem] = []
    var notes: [String] = []
    /// Events from this position on belong to the data as it is now: an earlier `start` of a
    /// node with empty data after other events means it was wiped and started afresh.
    var incarnationStart = 0
    /// Whether the log or snapshot could not be read whole (then state checks skip it).
    var storageDamaged = false

    var lastIndex: LogIndex { entries.last?.index ?? prevIndex }
    var snapshotIndex: LogIndex { snapshot?.index ?? 0 }
    /// The highest index the node's files reach: its log's end or its snapshot.
    var reach: LogIndex { max(lastIndex, snapshotIndex) }

    func entry(at index: LogIndex) -> LoggedEntry? {
        guard index > prevIndex, index <= lastIndex else { return nil }
        let e = entries[Int(index - prevIndex - 1)]
        return e.index == index ? e : nil
    }

    /// The term the node's files give index `index`: a log entry, the snapshot or the base.
    func term(at index: LogIndex) -> Term? {
        if let e = entry(at: index) { return e.term }
        if let s = snapshot, s.index == index, index > 0 { return s.term }
        if prevIndex == index, index > 0 { return prevTerm }
        return nil
    }

    /// The commit index the node reported for its present data, and the event line saying so
    /// (`start`'s commitIndex or a `commit` event; 0 and nil when none).
    var commitIndex: (index: LogIndex, line: Int?) {
        var best: (LogIndex, Int?) = (0, nil)
        for e in events[incarnationStart...] {
            if let c = e.reportedCommit, c > best.0 { best = (c, e.line) }
        }
        return best
    }

    /// Up to where the node's state is known from its files: its snapshot, then the
    /// committed entries of its log after it.
    var appliedIndex: LogIndex { max(snapshotIndex, min(commitIndex.index, lastIndex)) }
}

/// A client operation's outcome in history.jsonl.
struct AcknowledgedWrite {
    var line: Int
    var client: String
    var key: String
    var value: String
    var index: LogIndex
    var term: Term
}

/// A `converged` line of harness.log.
struct ConvergedRecord {
    var line: Int
    var applied: LogIndex
    var digest: String
    var nodes: [String]
}

/// What reading one node's files leaves for the next: the states of snapshot files read so
/// far, by header (identical files are inflated once), and the indices archived segments
/// read so far held (another node's archived segment wholly within them is not read: its
/// entries were committed, and so the same).
struct SnapshotStates {
    var byHeader: [SnapshotHeader: KeyValueStore] = [:]
    var archivedRanges: [ClosedRange<LogIndex>] = []

    func archived(_ range: ClosedRange<LogIndex>) -> Bool {
        archivedRanges.contains { $0.contains(range.lowerBound) && $0.contains(range.upperBound) }
    }
}

/// Everything the checker reads from a run directory.
struct RunFiles {
    var directory: String
    var nodes: [NodeFiles] = []
    var acknowledged: [AcknowledgedWrite] = []
    /// How many puts of each value were invoked, by key (for "a later write replaced it").
    var invocations: [String: [String: Int]] = [:]
    var converged: [ConvergedRecord] = []
    var problems: [FileProblem] = []
    /// Every put and get of history.jsonl with a known outcome or an unknown one, by key
    /// (check 6); failed operations did not happen and are not here.
    var registers: [String: [RegisterOperation]] = [:]
    /// Operations left out of check 6 because a line lacked its time stamp.
    var untimedOperations = 0

    init(directory: String) {
        self.directory = directory
        let nodesDir = directory + "/nodes"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: nodesDir)) ?? []
        var states = SnapshotStates()
        for name in names.sorted() where isDirectory(nodesDir + "/" + name) {
            nodes.append(Self.loadNode(name: name, runDirectory: directory, states: &states))
        }
        if names.isEmpty { problems.append(FileProblem(file: "nodes", "no node data dirs")) }
        loadHistory()
        loadHarnessLog()
    }

    // MARK: One node

    /// Reads a node's files: events first, then the snapshot, the base and the segments, so
    /// that, while the node runs, nothing read later contradicts a commit read earlier. A
    /// file that vanishes while it is read (compaction, a newer snapshot), or a base past the
    /// snapshot read before it, means the node moved on: read again (three times at most).
    static func loadNode(name: String, runDirectory: String, states: inout SnapshotStates) -> NodeFiles {
        var node = NodeFiles(name: name, dir: "nodes/" + name)
        for attempt in 0..<3 {
            node = NodeFiles(name: name, dir: "nodes/" + name)
            if !loadNodeOnce(&node, runDirectory: runDirectory, last: attempt == 2, states: &states) { break }
        }
        loadArchive(&node, runDirectory: runDirectory, states: &states)
        // No data at all beside earlier events: wiped (the harness keeps events.jsonl) and not
        // started since. Its events tell of data that is gone.
        if node.hardState == nil && node.snapshot == nil && node.entries.isEmpty && node.prevIndex == 0 && !node.events.isEmpty && node.problems.isEmpty {
            node.incarnationStart = node.events.count
            node.notes.append("\(node.dir) holds no data (wiped): its events before are not checked against its files")
        }
        return node
    }

    /// Returns true when the files changed under the read.
    /// On the `last` attempt, what changed is reported as a problem instead.
    private static func loadNodeOnce(_ node: inout NodeFiles, runDirectory: String, last: Bool, states: inout SnapshotStates) -> Bool {
        let abs = runDirectory + "/" + node.dir
        func rel(_ path: String) -> String { relative(path, to: runDirectory) }
        func vanished(_ path: String) -> Bool {
            guard !FileManager.default.fileExists(atPath: path) else { return false }
            if last { node.problems.append(FileProblem(file: rel(path), "removed while it was read (the node is running and changing its files)")) }
            return !last
        }
        func problem(_ e: any Error, _ fallbackFile: String) {
            node.problems.append(fileProblem(e, fallbackFile, runDirectory: runDirectory))
        }
        loadEvents(&node, path: abs + "/events.jsonl")

        // meta
        let metaPath = abs + "/" + MetaStore.fileName
        if let bytes = FileManager.default.contents(atPath: metaPath) {
            do { node.hardState = try MetaStore.decode(Array(bytes), file: node.dir + "/meta") } catch { problem(error, node.dir + "/meta") }
        }

        // snapshot: the newest file, as the node itself uses it.
        let snapDir = abs + "/snapshot"
        let snapNames = ((try? FileManager.default.contentsOfDirectory(atPath: snapDir)) ?? [])
            .filter { SnapshotHeader.parseFileName($0) != nil }.sorted()
        if let newest = snapNames.last {
            let path = snapDir + "/" + newest
            do {
                let info = try readSnapshot(path: path, name: newest, relative: rel(path), problems: &node.problems, states: &states)
                if info.state == nil { node.storageDamaged = true }
                node.snapshot = info
            } catch {
                if vanished(path) { return true }
                if !node.problems.contains(where: { $0.file == rel(path) }) { problem(error, rel(path)) }
                node.storageDamaged = true
            }
        }

        // log/base, then the segments.
        let logDir = abs + "/log"
        let basePath = logDir + "/" + LogStore.baseFileName
        if let bytes = FileManager.default.contents(atPath: basePath) {
            switch readBase(Array(bytes), file: rel(basePath)) {
            case let .success((i, t)):
                node.prevIndex = i
                node.prevTerm = t
            case let .failure(p):
                node.problems.append(p)
                node.storageDamaged = true
                return false
            }
        }
        if node.prevIndex > node.snapshotIndex && !node.storageDamaged {
            // A running node compacted after a newer snapshot than the one read: read again.
            if !last { return true }
            node.problems.append(FileProblem(file: rel(basePath), "the log is compacted through index \(node.prevIndex), past the newest snapshot (index \(node.snapshotIndex))"))
            node.storageDamaged = true
        }
        let segNames = ((try? FileManager.default.contentsOfDirectory(atPath: logDir)) ?? [])
            .compactMap { name in LogSegment.firstIndex(fileName: name).map { ($0, name) } }
            .sorted { $0.0 < $1.0 }
        // Segments followed by one starting at or before prevIndex + 1 are leftovers of an
        // interrupted compaction: the node removes them unread, and so does the checker.
        var live: [(LogIndex, String)] = []
        for (i, s) in segNames.enumerated() where !(i + 1 < segNames.count && segNames[i + 1].0 <= node.prevIndex + 1) {
            live.append(s)
        }
        var expected = node.prevIndex + 1
        for (i, (first, name)) in live.enumerated() {
            let path = logDir + "/" + name
            let isLast = i == live.count - 1
            let scan: SegmentScan
            do {
                scan = try LogSegment.scan(path: path)
            } catch {
                if vanished(path) { return true }
                problem(error, rel(path))
                node.storageDamaged = true
                break
            }
            guard scan.firstIndex == first else {
                node.problems.append(FileProblem(file: rel(path), offset: 12, "header says first index \(scan.firstIndex), the file name says \(first)"))
                node.storageDamaged = true
                break
            }
            if i == 0 && first > expected || i > 0 && first != expected {
                if scan.lastIndex > node.prevIndex || i > 0 {
                    node.problems.append(FileProblem(file: rel(path), offset: 12, "index gap: expected the log to go on at index \(expected), this segment starts at \(first)"))
                    node.storageDamaged = true
                    break
                }
            }
            for (k, e) in scan.entries.enumerated() where e.index <= node.prevIndex {
                node.archivedEntries.append(LoggedEntry(entry: e, file: rel(path), offset: scan.offsets[k], digest: StableHash.of(e.payload)))
            }
            for (k, e) in scan.entries.enumerated() where e.index > node.prevIndex {
                if let last = node.entries.last, e.term < last.term {
                    node.problems.append(FileProblem(file: rel(path), offset: scan.offsets[k], "term goes back from \(last.term) to \(e.term) at index \(e.index)"))
                    node.storageDamaged = true
                    return false
                }
                node.entries.append(LoggedEntry(entry: e, file: rel(path), offset: scan.offsets[k], digest: StableHash.of(e.payload)))
            }
            expected = max(expected, scan.lastIndex + 1)
            if let p = scan.problem {
                if isLast && scan.looksTorn {
                    node.notes.append("\(rel(path)) ends in a torn record at byte \(p.offset ?? scan.validEnd) (an append cut short by a crash; never acknowledged): ignored")
                } else {
                    node.problems.append(FileProblem(file: rel(path), offset: p.offset, p.detail))
                    node.storageDamaged = true
                    break
                }
            }
        }
        return false
    }

    /// A snapshot file's header and state. A file whose header equals one read before (the
    /// same index, term, configuration, sizes and body checksum: the simulator's shared takes,
    /// archived copies) has its body's checksum checked, and its state taken from the first.
    static func readSnapshot(
        path: String, name: String, relative: String, problems: inout [FileProblem], states: inout SnapshotStates
    ) throws -> SnapshotInfo {
        let header = try SnapshotHeader.read(path: path)
        if let (term, index) = SnapshotHeader.parseFileName(name), term != header.term || index != header.index {
            problems.append(FileProblem(file: relative, offset: 16, "the header says index \(header.index) term \(header.term), the file name says index \(index) term \(term)"))
        }
        var info = SnapshotInfo(index: header.index, term: header.term, configuration: header.configuration, file: relative, bytes: header.fileSize)
        if let known = states.byHeader[header] {
            try header.verifyBody(path: path)
            info.state = known
            return info
        }
        let reader = try SnapshotReader(path: path)
        var restorer = KeyValueRestorer()
        do {
            try reader.forEachPiece { try restorer.feed($0) }
            let state = try restorer.finish()
            info.state = state
            states.byHeader[header] = state
        } catch let e as DecodingError {
            problems.append(FileProblem(file: relative, "the state is not key-value state: \(e.detail) at byte \(e.offset) of the decompressed state"))
        }
        return info
    }

    /// `archive/log/*.seg` and `archive/snapshot/*.ss`: a damaged file there is a problem
    /// (the `files` check fails), and what it holds is left out.
    static func loadArchive(_ node: inout NodeFiles, runDirectory: String, states: inout SnapshotStates) {
        let dir = node.dir + "/archive"
        let abs = runDirectory + "/" + dir
        guard isDirectory(abs) else { return }
        let logNames = ((try? FileManager.default.contentsOfDirectory(atPath: abs + "/log")) ?? [])
            .compactMap { name in LogSegment.firstIndex(fileName: name).map { ($0, name) } }.sorted { $0.0 < $1.0 }
        var seen = Set(node.archivedEntries.map(\.index))
        var skipped = 0
        for (k, (first, name)) in logNames.enumerated() {
            let file = dir + "/log/" + name
            // Segments are consecutive: all but the last end where the next begins.
            if k + 1 < logNames.count, logNames[k + 1].0 > first, states.archived(first...(logNames[k + 1].0 - 1)) {
                skipped += 1
                continue
            }
            do {
                let scan = try LogSegment.scan(path: abs + "/log/" + name)
                if let a = scan.entries.first?.index, let b = scan.entries.last?.index { states.archivedRanges.append(a...b) }
                for (k, e) in scan.entries.enumerated() where seen.insert(e.index).inserted {
                    node.archivedEntries.append(LoggedEntry(entry: e, file: file, offset: scan.offsets[k], digest: StableHash.of(e.payload)))
                }
                if let p = scan.problem, !scan.looksTorn {
                    node.problems.append(FileProblem(file: file, offset: p.offset, p.detail))
                }
            } catch {
                node.problems.append(fileProblem(error, file, runDirectory: runDirectory))
            }
        }
        node.archivedEntries.sort { $0.index < $1.index }
        if skipped > 0 {
            node.notes.append("\(skipped) archived segments of \(node.dir) not read: other nodes' archives hold their indices")
        }
        let snapNames = ((try? FileManager.default.contentsOfDirectory(atPath: abs + "/snapshot")) ?? [])
            .filter { SnapshotHeader.parseFileName($0) != nil }.sorted()
        for name in snapNames {
            let file = dir + "/snapshot/" + name
            do {
                node.archivedSnapshots.append(try readSnapshot(path: abs + "/snapshot/" + name, name: name, relative: file, problems: &node.problems, states: &states))
            } catch {
                node.problems.append(fileProblem(error, file, runDirectory: runDirectory))
            }
        }
    }

    /// `path` relative to the run directory (as problems name files).
    static func relative(_ path: String, to runDirectory: String) -> String {
        path.hasPrefix(runDirectory + "/") ? String(path.dropFirst(runDirectory.count + 1)) : path
    }

    /// A storage error as a problem of the file it names, at its offset; any other error as
    /// a problem of `fallbackFile`.
    static func fileProblem(_ e: any Error, _ fallbackFile: String, runDirectory: String) -> FileProblem {
        guard let s = e as? StorageError else { return FileProblem(file: fallbackFile, "\(e)") }
        return FileProblem(file: relative(s.file, to: runDirectory), offset: s.offset, s.detail)
    }

    /// log/base: magic `RAFTBASE`, version u32 (1), prevIndex u64, prevTerm u64, CRC-32 u32.
    static func readBase(_ b: [UInt8], file: String) -> Result<(LogIndex, Term), FileProblem> {
        guard b.count == 32, Array(b[0..<8]) == Array("RAFTBASE".utf8) else {
            return .failure(FileProblem(file: file, offset: 0, "not a log base file (\(b.count) bytes, want 32 starting with RAFTBASE)"))
        }
        var r = ByteReader(b)
        do {
            _ = try r.readUInt64("magic")
            let v = try r.readUInt32("version")
            guard v == 1 else { return .failure(FileProblem(file: file, offset: 8, "base format version \(v), this build reads 1")) }
            let index = try r.readUInt64("prevIndex")
            let term = try r.readUInt64("prevTerm")
            let stored = try r.readUInt32("checksum")
            let actual = CRC32.of(b[0..<28])
            guard stored == actual else {
                return .failure(FileProblem(file: file, offset: 28, "checksum mismatch: stored \(stored.hex8), computed \(actual.hex8)"))
            }
            return .success((index, term))
        } catch {
            return .failure(FileProblem(file: file, offset: UInt64(error.offset), error.detail))
        }
    }

    static func loadEvents(_ node: inout NodeFiles, path: String) {
        guard let data = FileManager.default.contents(atPath: path) else {
            node.notes.append("\(node.eventsFile) is missing")
            return
        }
        let file = node.eventsFile
        forEachJSONLine(Array(data), file: file, problems: &node.problems) { line, object in
            guard object["term"]?.uintValue != nil, object["event"]?.stringValue != nil else {
                return "an event needs an integer \"term\" and a string \"event\""
            }
            guard let e = NodeEventLine(object) else {
                return "not an event of SPEC section 4 (event \(object["event"]!.serialized), or its fields)"
            }
            let ts = object["ts"]?.stringValue.flatMap(Timestamp.unixMicros(rfc3339:))
            node.events.append(LoggedEvent(line: line, term: e.term, event: e.event, ts: ts))
            return nil
        }
        // A start with empty data after earlier events: the data was wiped.
        for (k, e) in node.events.enumerated() where k > 0 && e.isStartOfWipedData { node.incarnationStart = k }
    }

    // MARK: history.jsonl and harness.log

    mutating func loadHistory() {
        let file = "history.jsonl"
        guard let data = FileManager.default.contents(atPath: directory + "/" + file) else {
            problems.append(FileProblem(file: file, "missing"))
            return
        }
        // The invoke a completion belongs to: same client (and same id, when lines carry one).
        var open: [String: (invoke: JSONValue, line: Int)] = [:]
        var acknowledged: [AcknowledgedWrite] = []
        var invoked: [String: [String: Int]] = [:]
        var completions: [(type: String, object: JSONValue, invoke: JSONValue?, client: String, line: Int)] = []
        forEachJSONLine(Array(data), file: file, problems: &problems) { line, object in
            guard let type = object["type"]?.stringValue else { return "a history line needs a string \"type\"" }
            func text(_ v: JSONValue?) -> String { v.map { $0.stringValue ?? $0.serialized } ?? "" }
            let client = text(object["client"])
            let slot = client + "\u{0}" + text(object["id"])
            if type == "invoke" {
                let earlier = open[slot]
                open[slot] = (object, line)
                if object["op"]?.stringValue == "put", let key = object["key"]?.stringValue, let value = object["value"]?.stringValue {
                    invoked[key, default: [:]][value, default: 0] += 1
                }
                // A client's operations are one at a time: a second invoke would take the
                // first one's answer, and the first would go unchecked.
                if let earlier { return "client \(client) invoked again before its operation invoked at line \(earlier.line) ended" }
                return nil
            }
            let opened = open.removeValue(forKey: slot)
            let invoke = opened?.invoke
            completions.append((type, object, invoke, client, opened?.line ?? line))
            guard type == "ok" else { return nil }
            guard (object["op"] ?? invoke?["op"])?.stringValue == "put" else { return nil }
            guard let key = (object["key"] ?? invoke?["key"])?.stringValue, let value = (object["value"] ?? invoke?["value"])?.stringValue,
                let index = object["index"]?.uintValue, let term = object["term"]?.uintValue
            else { return "an \"ok\" put needs key, value (on it or on its invoke), index and term" }
            if invoke == nil { invoked[key, default: [:]][value, default: 0] += 1 }
            acknowledged.append(AcknowledgedWrite(line: line, client: client, key: key, value: value, index: index, term: term))
            return nil
        }
        self.acknowledged = acknowledged
        self.invocations = invoked
        for c in completions { registerOperation(type: c.type, c.object, invoke: c.invoke, client: c.client, line: c.line) }
        // An operation invoked and never answered (the run ended first): unknown.
        for (invoke, line) in open.values.sorted(by: { $0.line < $1.line }) {
            registerOperation(type: "unknown", invoke, invoke: invoke, client: invoke["client"]?.stringValue ?? "", line: line)
        }
    }

    /// Adds the operation a completion line (or an unanswered invoke) ends to `registers`;
    /// `line` is where it was invoked.
    mutating func registerOperation(type: String, _ object: JSONValue, invoke: JSONValue?, client: String, line: Int) {
        guard type == "ok" || type == "unknown", let invoke else { return }  // "fail": it did not happen
        guard let op = (object["op"] ?? invoke["op"])?.stringValue, op == "put" || op == "get",
            let key = (object["key"] ?? invoke["key"])?.stringValue
        else { return }
        guard let started = invoke["ts"]?.stringValue.flatMap(Timestamp.unixMicros(rfc3339:)) else {
            untimedOperations += 1
            return
        }
        let ended = type == "ok" ? object["ts"]?.stringValue.flatMap(Timestamp.unixMicros(rfc3339:)) : nil
        if type == "ok" && ended == nil {
            untimedOperations += 1
            return
        }
        let kind: RegisterOperation.Kind
        if op == "put" {
            guard let value = (object["value"] ?? invoke["value"])?.stringValue else { return }
            kind = .put(value)
        } else {
            // An unknown get read nothing anyone knows: the search leaves it out.
            kind = .get(type == "ok" ? object["value"]?.stringValue : nil)
        }
        registers[key, default: []].append(RegisterOperation(client: client, kind: kind, invoked: started, completed: ended, position: line))
    }

    /// `converged applied=INDEX digest=HEX nodes=A,B,C` anywhere in a line of harness.log
    /// (after a time stamp, say): the words after `converged` in that order.
    mutating func loadHarnessLog() {
        guard let data = FileManager.default.contents(atPath: directory + "/harness.log") else { return }
        let text = String(decoding: data, as: UTF8.self)
        for (k, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if let record = Self.parseConverged(String(raw), line: k + 1) { converged.append(record) }
        }
    }

    static func parseConverged(_ line: String, line number: Int) -> ConvergedRecord? {
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let at = words.firstIndex(of: "converged"), words.count >= at + 4,
            words[at + 1].hasPrefix("applied="), words[at + 2].hasPrefix("digest="), words[at + 3].hasPrefix("nodes="),
            let applied = LogIndex(words[at + 1].dropFirst("applied=".count))
        else { return nil }
        let nodes = words[at + 3].dropFirst("nodes=".count).split(separator: ",").map(String.init)
        return ConvergedRecord(line: number, applied: applied, digest: String(words[at + 2].dropFirst("digest=".count)), nodes: nodes)
    }
}

/// Calls `body` with each JSON object line (1-based line numbers). A line that is not a JSON
/// object, or that `body` refuses (returning why), is a problem naming its byte offset; an
/// unfinished last line (no newline: a write cut short) is ignored.
func forEachJSONLine(_ bytes: [UInt8], file: String, problems: inout [FileProblem], _ body: (Int, JSONValue) -> String?) {
    var start = 0
    var line = 0
    bytes.withUnsafeBytes { all in
        while start < all.count {
            line += 1
            // memchr: a generic search over the slice ran at a few MB/s (history.jsonl of a
            // run with 64 KiB values is hundreds of MB).
            let end = memchr(all.baseAddress! + start, 0x0a, all.count - start).map { all.baseAddress!.distance(to: UnsafeRawPointer($0)) } ?? all.count
            let finished = end < all.count
            defer { start = end + 1 }
            let slice = UnsafeRawBufferPointer(rebasing: all[start..<end])
            if slice.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            guard let object = JSONValue.parse(slice), case .object = object else {
                if !finished { continue }
                problems.append(FileProblem(file: file, offset: UInt64(start), "line \(line) is not a JSON object"))
                continue
            }
            if let why = body(line, object) {
                problems.append(FileProblem(file: file, offset: UInt64(start), "line \(line): \(why)"))
            }
        }
    }
}

func isDirectory(_ path: String) -> Bool {
    var dir: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
}

extension UInt32 {
    var hex8: String {
        let s = String(self, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
