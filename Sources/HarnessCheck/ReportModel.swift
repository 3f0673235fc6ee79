import Foundation
import RaftNodeWire

/// Everything report.html draws, read from a run directory's files (SPEC sections 3, 4):
/// harness.log (header, steps, faults), report.json (verdict, checks and the time of each
/// one's first violation), history.jsonl (client operations) and each node's events.jsonl
/// (roles and terms, configurations, snapshots). Times are microseconds since the epoch, on
/// the run's one clock.
struct RunPicture {
    var scenario = "?"
    var seed = "?"
    var world = "?"
    var verdict = "unknown"
    var ms: Int?
    var checks: [ReportCheck] = []
    /// The time axis: from the run's start to its last recorded moment.
    var t0: Int64 = 0
    var t1: Int64 = 1
    var lanes: [Lane] = []
    var steps: [LoggedStep] = []
    var faults = Faults(steps: [], end: 0)
    var configs: [ConfigMark] = []
    var snapshotsSent: [SnapshotTransfer] = []
    var snapshotsInstalled: [SnapshotTransfer] = []
    var snapshotsTaken: [(node: String, ts: Int64, index: UInt64, bytes: UInt64)] = []
    var operations: [ClientOperation] = []
    var firstError: FirstError?
    /// Files that could not be read, said in the page.
    var problems: [String] = []

    var failedChecks: [ReportCheck] { checks.filter { !$0.passed } }
}

/// A check of report.json (or of the checker, when report.json is missing).
struct ReportCheck {
    var name: String
    var passed: Bool
    var evidence: [String]
    /// The time of its first violation, when known (report.json's `at`).
    var at: Int64?
}

/// One node's lane: its roles (with terms) while it ran.
struct Lane {
    var name: String
    var roles: [RoleBand] = []
    /// Down: from the steps (kill, crash, stop) and from its own `stop` events.
    var down: [Band] = []
}

struct RoleBand {
    var start: Int64
    var end: Int64
    /// `follower`, `candidate`, `pre-candidate`, `leader`, `learner`, `snapshotting`.
    var role: String
    var term: UInt64
}

/// A committed `config` event of one node.
struct ConfigMark {
    var node: String
    var ts: Int64
    var index: UInt64
    var members: [String]
    var learners: [String]
}

/// A `snapshot-sent` (node = the sender, peer = the receiver) or a `snapshot-installed`
/// (node = the receiver, peer = the sender).
struct SnapshotTransfer {
    var node: String
    var peer: String
    var ts: Int64
    var index: UInt64
    var bytes: UInt64
    var ms: Int
}

struct ClientOperation {
    var client: String
    var op: String
    var key: String
    var start: Int64
    /// Nil when it never ended (the run stopped first).
    var end: Int64?
    /// `ok`, `fail`, `unknown` (unanswered ones included).
    var outcome: String
}

/// The first violation: where the page's strong mark goes.
struct FirstError {
    var ts: Int64
    var check: String
    var detail: String
    /// How its time is known: `report.json at`, `failed step`, or `end of run`.
    var source: String
}

extension RunPicture {
    init(runDirectory dir: String) {
        let log = HarnessLog(text: (try? String(contentsOfFile: dir + "/harness.log", encoding: .utf8)) ?? "")
        if !FileManager.default.fileExists(atPath: dir + "/harness.log") { problems.append("harness.log is missing") }
        steps = log.steps
        scenario = log.scenario ?? URL(fileURLWithPath: dir).lastPathComponent
        seed = log.seed.map(String.init) ?? "?"
        world = log.world ?? "?"
        readChecks(dir: dir, log: log)
        readEvents(dir: dir)
        readHistory(dir: dir)

        // The axis: the run's start (harness.log's `started`, else the first time seen) to
        // the last time seen.
        var times: [Int64] = steps.flatMap { [$0.start, $0.end] }
        times += configs.map(\.ts) + snapshotsSent.map(\.ts) + snapshotsInstalled.map(\.ts) + snapshotsTaken.map(\.ts)
        times += lanes.flatMap { $0.roles.flatMap { [$0.start, $0.end] } + $0.down.flatMap { [$0.start, $0.end] } }.filter { $0 != Int64.max }
        times += operations.flatMap { [$0.start] + ($0.end.map { [$0] } ?? []) }
        times += checks.compactMap(\.at)
        t0 = log.startedMicros ?? times.min() ?? Timestamp.simulationEpochMicros
        t1 = max(times.max() ?? t0, t0 + 1000)
        if let ms, log.startedMicros != nil { t1 = max(t1, t0 + Int64(ms) * 1000) }

        faults = Faults(steps: steps, end: t1)
        finishLanes()
        findFirstError()
    }

    // MARK: report.json

    mutating func readChecks(dir: String, log: HarnessLog) {
        let path = dir + "/report.json"
        if let data = FileManager.default.contents(atPath: path) {
            let value = data.withUnsafeBytes { JSONValue.parse($0) }
            if let value, case .object = value {
                if let s = value["scenario"]?.stringValue { scenario = s }
                if let s = value["seed"] { seed = s.stringValue ?? s.serialized }
                if let w = value["world"]?.stringValue { world = w }
                if let v = value["verdict"]?.stringValue { verdict = v }
                ms = value["ms"]?.intValue.map(Int.init)
                if case let .array(list)? = value["checks"] {
                    for c in list {
                        guard let name = c["name"]?.stringValue else { continue }
                        var evidence: [String] = []
                        if case let .array(e)? = c["evidence"] { evidence = e.map { $0.stringValue ?? $0.serialized } }
                        checks.append(
                            ReportCheck(
                                name: name, passed: c["passed"]?.boolValue ?? false, evidence: evidence,
                                at: c["at"]?.stringValue.flatMap(Timestamp.unixMicros(rfc3339:))))
                    }
                }
                return
            }
            problems.append("report.json is not a JSON object; the checks below are the checker's, run now")
        }
        // No report: the checker now, and the steps from harness.log.
        let failed = log.steps.first(where: \.failed)
        checks.append(
            ReportCheck(name: "steps", passed: failed == nil, evidence: failed.map { ["\($0.text): \($0.outcome)"] } ?? [], at: nil))
        checks += RunChecker.check(runDirectory: dir).map {
            ReportCheck(name: $0.name, passed: $0.passed, evidence: $0.evidence, at: $0.firstViolationAt)
        }
        verdict = log.verdict ?? (checks.allSatisfy(\.passed) ? "pass" : "fail")
    }

    // MARK: events.jsonl

    mutating func readEvents(dir: String) {
        let nodesDir = dir + "/nodes"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: nodesDir)) ?? []).filter { isDirectory(nodesDir + "/" + $0) }.sorted()
        for name in names {
            var lane = Lane(name: name)
            let file = "nodes/\(name)/events.jsonl"
            // The checker's reading of the file (RunFiles), so that both see the same events.
            guard FileManager.default.fileExists(atPath: dir + "/" + file) else {
                lanes.append(lane)
                continue
            }
            var files = NodeFiles(name: name, dir: "nodes/" + name)
            RunFiles.loadEvents(&files, path: dir + "/" + file)
            var open: RoleBand?
            var stoppedAt: (Int64, String)?
            func close(_ t: Int64) {
                if var b = open {
                    b.end = max(b.start, t)
                    lane.roles.append(b)
                }
                open = nil
            }
            for e in files.events {
                guard let t = e.ts else { continue }
                switch e.event {
                case .start:
                    close(t)
                    if let (s, reason) = stoppedAt { lane.down.append(Band(start: s, end: t, label: reason)) }
                    stoppedAt = nil
                    open = RoleBand(start: t, end: t, role: "follower", term: e.term)
                case let .stop(reason):
                    close(t)
                    stoppedAt = (t, "stopped (\(reason))")
                case let .role(role, preVote):
                    close(t)
                    open = RoleBand(start: t, end: t, role: preVote ? "pre-candidate" : role, term: e.term)
                case .apply:
                    break  // its term is the entry's, not the node's
                default:
                    if let o = open, o.term != e.term {
                        close(t)
                        open = RoleBand(start: t, end: t, role: o.role, term: e.term)
                    } else if open == nil && stoppedAt == nil {
                        open = RoleBand(start: t, end: t, role: "follower", term: e.term)
                    }
                }
                switch e.event {
                case let .config(index, members, learners, committed) where committed:
                    configs.append(ConfigMark(node: name, ts: t, index: index, members: members, learners: learners))
                case let .snapshotSent(to, index, _, bytes, ms):
                    snapshotsSent.append(SnapshotTransfer(node: name, peer: to, ts: t, index: index, bytes: bytes, ms: ms))
                case let .snapshotInstalled(from, index, _, bytes, ms):
                    snapshotsInstalled.append(SnapshotTransfer(node: name, peer: from, ts: t, index: index, bytes: bytes, ms: ms))
                case let .snapshotTaken(index, _, bytes, _):
                    snapshotsTaken.append((name, t, index, bytes))
                default:
                    break
                }
            }
            if !files.problems.isEmpty { problems.append("\(file): \(files.problems.count) unreadable lines, first: \(files.problems[0])") }
            // Still open at the end: closed when the axis is known (finishLanes).
            if let o = open { lane.roles.append(RoleBand(start: o.start, end: Int64.max, role: o.role, term: o.term)) }
            if let (s, reason) = stoppedAt { lane.down.append(Band(start: s, end: Int64.max, label: reason)) }
            lanes.append(lane)
        }
        if names.isEmpty { problems.append("nodes/ holds no node directories") }
    }

    /// Ends what was open at the end of the run, adds the steps' down bands, and cuts each
    /// role band where its node was down.
    mutating func finishLanes() {
        let end = t1
        for k in lanes.indices {
            var lane = lanes[k]
            let fromSteps = faults.down[lane.name] ?? []
            // A stop after the last step is the run's end (the harness stops every node), not
            // a fault: the lane just ends there.
            let lastStep = steps.map(\.end).max() ?? Int64.max
            lane.down = Self.merge((lane.down + fromSteps).map { Band(start: $0.start, end: min($0.end, end), label: $0.label) })
            let shutdown = lane.down.filter { $0.start >= lastStep }
            lane.down.removeAll { $0.start >= lastStep }
            var roles: [RoleBand] = []
            for var b in lane.roles {
                // Still open at the end: running then, or killed (no stop event); the down
                // bands cut it where it was not running.
                if b.end == Int64.max { b.end = end }
                roles += Self.subtract(lane.down + shutdown, from: b)
            }
            lane.roles = roles
            lanes[k] = lane
        }
    }

    static func merge(_ bands: [Band]) -> [Band] {
        var out: [Band] = []
        for b in bands.sorted(by: { ($0.start, $0.end) < ($1.start, $1.end) }) {
            if var last = out.last, b.start <= last.end {
                last.end = max(last.end, b.end)
                out[out.count - 1] = last
            } else {
                out.append(b)
            }
        }
        return out
    }

    /// The parts of `band` outside every one of `holes` (sorted, disjoint).
    static func subtract(_ holes: [Band], from band: RoleBand) -> [RoleBand] {
        var out: [RoleBand] = []
        var from = band.start
        for h in holes where h.end > from && h.start < band.end {
            if h.start > from { out.append(RoleBand(start: from, end: h.start, role: band.role, term: band.term)) }
            from = max(from, h.end)
        }
        if from < band.end {
            out.append(RoleBand(start: from, end: band.end, role: band.role, term: band.term))
        }
        return out
    }

    // MARK: history.jsonl

    mutating func readHistory(dir: String) {
        guard let data = FileManager.default.contents(atPath: dir + "/history.jsonl") else {
            problems.append("history.jsonl is missing")
            return
        }
        var open: [String: Int] = [:]
        var ops: [ClientOperation] = []
        var unreadable: [FileProblem] = []
        forEachJSONLine(Array(data), file: "history.jsonl", problems: &unreadable) { _, object in
            guard let type = object["type"]?.stringValue, let t = object["ts"]?.stringValue.flatMap(Timestamp.unixMicros(rfc3339:)) else {
                return nil
            }
            func text(_ v: JSONValue?) -> String { v.map { $0.stringValue ?? $0.serialized } ?? "" }
            let client = text(object["client"])
            let slot = client + "\u{0}" + text(object["id"])
            if type == "invoke" {
                open[slot] = ops.count
                ops.append(
                    ClientOperation(client: client, op: text(object["op"]), key: text(object["key"]), start: t, end: nil, outcome: "unknown"))
            } else if let k = open.removeValue(forKey: slot) {
                ops[k].end = t
                ops[k].outcome = type
            }
            return nil
        }
        if !unreadable.isEmpty { problems.append("history.jsonl: \(unreadable.count) unreadable lines, first: \(unreadable[0])") }
        operations = ops
    }

    // MARK: the first violation

    /// The earliest known time of a violation: a failed check's `at`, or the failed step's
    /// end; when neither is known but the run did not pass, the end of the run.
    mutating func findFirstError() {
        var candidates: [FirstError] = []
        for c in failedChecks {
            if let at = c.at { candidates.append(FirstError(ts: at, check: c.name, detail: c.evidence.first ?? "", source: "report.json at")) }
        }
        if let step = steps.first(where: \.failed) {
            let line = step.scenarioLine.map { "line \($0): " } ?? ""
            candidates.append(FirstError(ts: step.end, check: "steps", detail: "\(line)\(step.text): \(step.outcome)", source: "failed step"))
        }
        if let first = candidates.min(by: { $0.ts < $1.ts }) {
            firstError = first
        } else if verdict != "pass" || !failedChecks.isEmpty {
            let c = failedChecks.first
            firstError = FirstError(
                ts: t1, check: c?.name ?? "verdict \(verdict)", detail: c?.evidence.first ?? "the run's verdict is \(verdict)", source: "end of run")
        }
        if let f = firstError {
            t1 = max(t1, f.ts)
            t0 = min(t0, f.ts)
        }
    }
}
