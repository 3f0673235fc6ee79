import Foundation
import Raft
import RaftNodeMachine
import RaftNodeWire
import RaftStorage

/// What `harness inspect PATH [--json]` prints, and how it ends.
public struct InspectOutput: Sendable, Hashable {
    /// The lines for stdout, in order.
    public var lines: [String]
    /// A damaged file was met (its `error` line is among `lines`): exit non-zero.
    public var damaged: Bool
    /// Bad input (no such path, not a kind of file inspect knows): one line for stderr,
    /// nothing in `lines`; exit non-zero.
    public var error: String?

    /// 0 when everything read was good, 1 for a damaged file, 2 for bad input.
    public var exitCode: Int32 { error != nil ? 2 : damaged ? 1 : 0 }
}

/// `harness inspect` (SPEC section 6). PATH is one of:
///
/// - a node's data dir (holding `meta`, `log/`, `snapshot/` or `events.jsonl`): a `meta`
///   line (term 0 and no vote when there is no meta file), a `snapshot` line for the newest
///   snapshot file if any, then an `entry` line for each entry of the log after its
///   compaction point, oldest first;
/// - a log dir (`log/`, holding `*.seg` or `base`): its `entry` lines;
/// - a snapshot dir (holding `*.ss`): a `snapshot` line for each file, oldest first;
/// - a log segment file (`*.seg`): an `entry` line for each of its records;
/// - a snapshot file (`*.ss`): its `snapshot` line;
/// - a meta file: its `meta` line; a `log/base` file: `{"kind":"base","index":..,"term":..}`;
/// - an events file (`*.jsonl`, or any file starting with `{`): its lines.
///
/// With `json`, one JSON object a line (written with `JSONValue`):
///
/// ```
/// {"kind":"meta","term":3,"votedFor":"n2"}
/// {"kind":"snapshot","index":42,"term":3,"members":["n1","n2","n3"],"learners":[],"bytes":180,"digest":"…"}
/// {"kind":"entry","index":5,"term":2,"type":"command","digest":"…"}
/// {"kind":"error","file":"…","offset":168,"detail":"record checksum mismatch: …"}
/// ```
///
/// `members` are the snapshot configuration's voters, `learners` its learners, `bytes` the
/// file's size (compressed, as in events), `digest` the state digest (`KeyValueStore`'s
/// `digestHex`, as `status` reports it; null when the state is not key-value state, with a
/// `stateError` saying why). An entry's `digest` is the StableHash of its payload in 16 hex
/// digits: the same payload gives the same digest on every node. A damaged file gives what
/// could be read before the damage, then an `error` line with the file and byte offset; the
/// command then exits non-zero. Without `json`, the same records as plain lines.
public enum Inspector {
    public static func inspect(path: String, json: Bool) -> InspectOutput {
        var records: [Record] = []
        var damaged = false
        func add(_ r: Record) {
            records.append(r)
            if case .error = r { damaged = true }
        }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            return InspectOutput(lines: [], damaged: false, error: "inspect: \(path): no such file or directory")
        }
        if isDir.boolValue {
            let names = Set((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            if names.contains(MetaStore.fileName) || names.contains("log") || names.contains("snapshot") || names.contains("events.jsonl") {
                dataDir(path, add)
            } else if names.contains(LogStore.baseFileName) || names.contains(where: { LogSegment.firstIndex(fileName: $0) != nil }) {
                logDir(path, add)
            } else if names.contains(where: { SnapshotHeader.parseFileName($0) != nil }) {
                for name in names.filter({ SnapshotHeader.parseFileName($0) != nil }).sorted() {
                    snapshot(path + "/" + name, add)
                }
            } else {
                return InspectOutput(lines: [], damaged: false, error: "inspect: \(path): not a node data dir, a log dir or a snapshot dir")
            }
        } else {
            guard let data = FileManager.default.contents(atPath: path) else {
                return InspectOutput(lines: [], damaged: false, error: "inspect: \(path): cannot be read")
            }
            let bytes = Array(data)
            let magic = Array(bytes.prefix(8))
            if magic == LogSegment.magic || path.hasSuffix(LogSegment.fileExtension) {
                segment(path, add)
            } else if magic == SnapshotHeader.magic || path.hasSuffix(SnapshotHeader.fileExtension) {
                snapshot(path, add)
            } else if magic == Array("RAFTMETA".utf8) {
                meta(path, add)
            } else if magic == Array("RAFTBASE".utf8) {
                switch RunFiles.readBase(bytes, file: path) {
                case let .success((i, t)): add(.base(index: i, term: t))
                case let .failure(p): add(.error(p))
                }
            } else if path.hasSuffix(".jsonl") || bytes.first(where: { $0 != 32 && $0 != 10 && $0 != 9 && $0 != 13 }) == UInt8(ascii: "{") || bytes.isEmpty {
                eventLines(bytes, file: path, add)
            } else {
                return InspectOutput(lines: [], damaged: false, error: "inspect: \(path): not a log segment, snapshot, meta, base or events file")
            }
        }
        return InspectOutput(lines: records.map { json ? $0.jsonLine : $0.text }, damaged: damaged, error: nil)
    }

    // MARK: What is read

    enum Record {
        case meta(HardState)
        case snapshot(SnapshotHeader, digest: String?, stateError: String?)
        case base(index: LogIndex, term: Term)
        case entry(Entry)
        case event(line: String, object: [String: JSONValue])
        case error(FileProblem)

        var json: JSONValue {
            switch self {
            case let .meta(hs):
                return .object(
                    [("kind", .string("meta")), ("term", int(hs.term)), ("votedFor", hs.votedFor.map { .string($0) } ?? .null)]
                        + (hs.joining ? [("joining", .bool(true))] : []))
            case let .snapshot(h, digest, stateError):
                var o: [(String, JSONValue)] = [
                    ("kind", .string("snapshot")), ("index", int(h.index)), ("term", int(h.term)),
                    ("members", .strings(h.configuration.voters)), ("learners", .strings(h.configuration.learners)),
                    ("bytes", int(h.fileSize)), ("digest", digest.map { .string($0) } ?? .null),
                ]
                if let stateError { o.append(("stateError", .string(stateError))) }
                return .object(o)
            case let .base(i, t):
                return .object([("kind", .string("base")), ("index", int(i)), ("term", int(t))])
            case let .entry(e):
                return .object([
                    ("kind", .string("entry")), ("index", int(e.index)), ("term", int(e.term)),
                    ("type", .string(e.type.description)), ("digest", .string(StableHash.of(e.payload).hex16)),
                ])
            case let .event(_, object):
                return .object(object.keys.sorted().map { ($0, object[$0]!) })
            case let .error(p):
                return .object([
                    ("kind", .string("error")), ("file", .string(p.file)), ("offset", p.offset.map { int($0) } ?? .null), ("detail", .string(p.detail)),
                ])
            }
        }

        /// An events line as it is in the file; any other record as a JSON object.
        var jsonLine: String {
            if case let .event(line, _) = self { return line.trimmingCharacters(in: .whitespacesAndNewlines) }
            return json.serialized
        }

        var text: String {
            switch self {
            case let .meta(hs):
                return "meta: term \(hs.term), voted for \(hs.votedFor ?? "nobody")" + (hs.joining ? ", joining (no vote until caught up)" : "")
            case let .snapshot(h, digest, stateError):
                return "snapshot: index \(h.index), term \(h.term), \(h.configuration), \(h.fileSize) bytes (state \(h.stateSize)), digest "
                    + (digest ?? "unknown" + (stateError.map { " (\($0))" } ?? ""))
            case let .base(i, t):
                return "base: compacted through index \(i), term \(t)"
            case let .entry(e):
                return "entry \(e.index) term \(e.term) \(e.type) \(StableHash.of(e.payload).hex16): \(describe(e))"
            case let .event(line, object):
                var words: [String] = []
                if case let .string(ts)? = object["ts"] { words.append(ts) }
                if case let .string(node)? = object["node"] { words.append(node) }
                if let term = object["term"] { words.append("term \(term.serialized)") }
                if case let .string(ev)? = object["event"] { words.append(ev) }
                for key in object.keys.sorted() where !["ts", "node", "term", "event"].contains(key) {
                    words.append("\(key)=\(object[key]!.serialized)")
                }
                return words.isEmpty ? line : words.joined(separator: " ")
            case let .error(p):
                return "error: \(p)"
            }
        }
    }

    // MARK: Readers

    static func problem(_ error: any Error, _ file: String) -> FileProblem {
        if let s = error as? StorageError { return FileProblem(file: s.file, offset: s.offset, s.detail) }
        return FileProblem(file: file, "\(error)")
    }

    static func dataDir(_ path: String, _ add: (Record) -> Void) {
        meta(path + "/" + MetaStore.fileName, add)
        let snapDir = path + "/snapshot"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: snapDir)) ?? []).filter { SnapshotHeader.parseFileName($0) != nil }.sorted()
        if let newest = names.last { snapshot(snapDir + "/" + newest, add) }
        logDir(path + "/log", add)
    }

    static func meta(_ path: String, _ add: (Record) -> Void) {
        guard let data = FileManager.default.contents(atPath: path) else {
            add(.meta(HardState()))
            return
        }
        do { add(.meta(try MetaStore.decode(Array(data), file: path))) } catch { add(.error(problem(error, path))) }
    }

    static func snapshot(_ path: String, _ add: (Record) -> Void) {
        let header: SnapshotHeader
        do { header = try SnapshotHeader.read(path: path) } catch {
            add(.error(problem(error, path)))
            return
        }
        do {
            let reader = try SnapshotReader(path: path)
            var restorer = KeyValueRestorer()
            do {
                try reader.forEachPiece { try restorer.feed($0) }
                add(.snapshot(header, digest: try restorer.finish().digestHex, stateError: nil))
            } catch let e as DecodingError {
                // Read to the end, so that damage in the body is still reported as such.
                while try reader.read() != nil {}
                add(.snapshot(header, digest: nil, stateError: "not key-value state: \(e.detail) at byte \(e.offset) of the state"))
            }
        } catch {
            add(.snapshot(header, digest: nil, stateError: "the body cannot be read"))
            add(.error(problem(error, path)))
        }
    }

    static func segment(_ path: String, _ add: (Record) -> Void) {
        do {
            let scan = try LogSegment.scan(path: path)
            for e in scan.entries { add(.entry(e)) }
            if let p = scan.problem {
                add(.error(FileProblem(file: p.file, offset: p.offset, p.detail + (scan.looksTorn ? " (looks like an append cut short by a crash: raft-node cuts it off when it opens the log)" : ""))))
            }
        } catch {
            add(.error(problem(error, path)))
        }
    }

    /// The log as the node reads it: entries after the compaction point of `base`, segment
    /// after segment (leftovers of an interrupted compaction skipped), to the first damage.
    static func logDir(_ path: String, _ add: (Record) -> Void) {
        var prevIndex: LogIndex = 0
        if let data = FileManager.default.contents(atPath: path + "/" + LogStore.baseFileName) {
            switch RunFiles.readBase(Array(data), file: path + "/" + LogStore.baseFileName) {
            case let .success((i, _)): prevIndex = i
            case let .failure(p):
                add(.error(p))
                return
            }
        }
        let segs = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [])
            .compactMap { name in LogSegment.firstIndex(fileName: name).map { ($0, name) } }
            .sorted { $0.0 < $1.0 }
        var expected = prevIndex + 1
        for (i, (first, name)) in segs.enumerated() {
            if i + 1 < segs.count && segs[i + 1].0 <= prevIndex + 1 { continue }
            let file = path + "/" + name
            let scan: SegmentScan
            do { scan = try LogSegment.scan(path: file) } catch {
                add(.error(problem(error, file)))
                return
            }
            if scan.firstIndex != first {
                add(.error(FileProblem(file: file, offset: 12, "header says first index \(scan.firstIndex), the file name says \(first)")))
                return
            }
            if first > expected {
                add(.error(FileProblem(file: file, offset: 12, "index gap: the log goes on at index \(expected), this segment starts at \(first)")))
                return
            }
            for e in scan.entries where e.index >= expected { add(.entry(e)) }
            expected = max(expected, scan.lastIndex + 1)
            if let p = scan.problem {
                add(.error(FileProblem(file: p.file, offset: p.offset, p.detail + (scan.looksTorn && i == segs.count - 1 ? " (looks like an append cut short by a crash: raft-node cuts it off when it opens the log)" : ""))))
                return
            }
        }
    }

    static func eventLines(_ bytes: [UInt8], file: String, _ add: (Record) -> Void) {
        var start = 0
        var number = 0
        while start < bytes.count {
            number += 1
            let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
            let slice = bytes[start..<end]
            let line = String(decoding: slice, as: UTF8.self)
            if !line.allSatisfy(\.isWhitespace) {
                guard case let .object(members)? = slice.withUnsafeBytes({ JSONValue.parse($0) }) else {
                    add(.error(FileProblem(file: file, offset: UInt64(start), "line \(number) is not a JSON object" + (end == bytes.count ? " (the last line, unfinished)" : ""))))
                    return
                }
                var object: [String: JSONValue] = [:]
                for (k, v) in members where object[k] == nil { object[k] = v }
                add(.event(line: line, object: object))
            }
            start = end + 1
        }
    }
}

private func int(_ v: UInt64) -> JSONValue { .int(Int64(clamping: v)) }
