import Foundation
import RaftNodeWire

// `harness explore`, part 4 of 5: which target states a run reached, read from its files
// (harness.log and nodes/*/events.jsonl), not from what the generator meant to do.

/// A state where membership and snapshot bugs live.
public enum ExploreTarget: String, CaseIterable, Sendable, Hashable {
    case transferCutByKill = "transfer-cut-by-kill"
    case leaderLostMidChange = "leader-lost-mid-change"
    case removedLeader = "removed-leader"
    case wipedReadded = "wiped-readded"
    case compactedPastCut = "compacted-past-cut"
    case longInstall = "long-install"

    /// What the files show, in a few words.
    public var meaning: String {
        switch self {
        case .transferCutByKill: "a node killed while it received a snapshot"
        case .leaderLostMidChange: "a leader lost with a configuration entry appended, not committed"
        case .removedLeader: "a leader removed from the configuration"
        case .wipedReadded: "a member re-added with empty data under its name"
        case .compactedPastCut: "a cut-off follower caught up by a snapshot"
        case .longInstall: "a snapshot install longer than an election timeout"
        }
    }
}

public enum ExploreCoverage {
    /// One step line of harness.log.
    struct StepLine {
        /// Wall time (seconds since 1970) when the step ended.
        var end: Double
        var text: String
        var ok: Bool
        /// The words in parentheses after "ok".
        var detail: String
    }

    /// One events.jsonl line, read with the node's own event type (`NodeEventLine`); the
    /// targets below look at its fields by name.
    struct Event {
        var ts: Double
        var event: String
        private var fields: [String: JSONValue]

        init(ts: Double, line: NodeEventLine) {
            self.ts = ts
            event = line.event.kind
            fields = Dictionary(line.event.fields, uniquingKeysWith: { a, _ in a })
        }

        func string(_ k: String) -> String? { fields[k]?.stringValue }
        func int(_ k: String) -> Int? { fields[k]?.intValue.map { Int($0) } }
        func strings(_ k: String) -> [String] {
            guard case let .array(xs)? = fields[k] else { return [] }
            return xs.compactMap(\.stringValue)
        }
    }

    /// The targets the run in `runDirectory` reached, in the order of `ExploreTarget`.
    public static func measure(runDirectory dir: String) -> [ExploreTarget] {
        let logText = (try? String(contentsOfFile: dir + "/harness.log", encoding: .utf8)) ?? ""
        var events: [(String, [Event])] = []
        let nodesDir = dir + "/nodes"
        for n in ((try? FileManager.default.contentsOfDirectory(atPath: nodesDir)) ?? []).sorted() {
            guard let text = try? String(contentsOfFile: nodesDir + "/" + n + "/events.jsonl", encoding: .utf8) else { continue }
            events.append((n, parseEvents(text)))
        }
        let steps = parseLog(logText, events: events.map(\.1))
        return measure(steps: steps, events: events, electionMs: electionTimeoutMs(steps))
    }

    static func measure(steps: [StepLine], events: [(String, [Event])], electionMs: Int) -> [ExploreTarget] {
        var hit: [ExploreTarget] = []
        func mark(_ t: ExploreTarget) { if !hit.contains(t) { hit.append(t) } }
        let ok = steps.filter(\.ok)
        func firstWord(_ s: StepLine) -> String { String(s.text.split(separator: " ").first ?? "") }
        func detailNode(_ s: StepLine) -> String { String(s.detail.split(separator: " ").first ?? "") }

        for (node, evs) in events {
            // 1. A node killed while it received a snapshot: `snapshotting`, then its next
            // start with nothing that ends the transfer between, and a kill of it meanwhile.
            var receivingSince: Double?
            for e in evs {
                switch e.event {
                case "role":
                    receivingSince = e.string("role") == "snapshotting" ? (receivingSince ?? e.ts) : nil
                case "snapshot-installed", "stop":
                    receivingSince = nil
                case "start":
                    if let since = receivingSince,
                        ok.contains(where: { firstWord($0) == "kill" && detailNode($0) == node && $0.end >= since - 0.05 && $0.end <= e.ts + 0.05 })
                    {
                        mark(.transferCutByKill)
                    }
                    receivingSince = nil
                default: break
                }
            }

            // 2 and 3. A leader's own account of configuration entries it appended.
            var leading = false
            var pending: [Int] = []
            var removedSelf = false
            for e in evs {
                switch e.event {
                case "role":
                    let nowLeader = e.string("role") == "leader"
                    if leading && !nowLeader && !pending.isEmpty { mark(.leaderLostMidChange) }
                    if !nowLeader {
                        pending = []
                        removedSelf = false
                    }
                    leading = nowLeader
                case "start", "stop":
                    if leading && !pending.isEmpty { mark(.leaderLostMidChange) }
                    if e.event == "stop" && e.string("reason") == "removed" && removedSelf { mark(.removedLeader) }
                    leading = false
                    pending = []
                    removedSelf = false
                case "config":
                    guard let index = e.int("index") else { break }
                    let excludesSelf = !e.strings("members").contains(node) && !e.strings("learners").contains(node)
                    if e.string("phase") == "appended" {
                        if leading {
                            pending.append(index)
                            if excludesSelf { removedSelf = true }
                        }
                    } else if e.string("phase") == "committed" {
                        pending.removeAll { $0 <= index }
                        if removedSelf && excludesSelf { mark(.removedLeader) }
                    }
                default: break
                }
            }

            // 4. Re-added with empty data: a fresh start after an earlier life as a member,
            // an `add` of it, then a committed configuration with it a member.
            var wasMember = false
            var fresh = false
            for e in evs {
                if e.event == "config" && e.strings("members").contains(node) {
                    if fresh && e.string("phase") == "committed" {
                        if ok.contains(where: { firstWord($0) == "add" && detailNode($0) == node }) { mark(.wipedReadded) }
                    }
                    if !fresh { wasMember = true }
                }
                if e.event == "start" && wasMember && e.int("lastIndex") == 0 && e.int("commitIndex") == 0 && e.int("snapshotIndex") == 0 {
                    fresh = true
                }
            }

            // 6. An install that took longer than an election timeout.
            if evs.contains(where: { $0.event == "snapshot-installed" && ($0.int("ms") ?? 0) > electionMs }) { mark(.longInstall) }
        }

        // 5. A follower cut off (isolate, partition), then its next snapshot install, with no
        // restart of it between (an install after a restart says nothing of the cut).
        for s in ok where firstWord(s) == "isolate" || firstWord(s) == "partition" {
            let groups = s.detail.split(separator: "|").map { $0.split(separator: " ").map(String.init) }
            let cut = groups.count == 1 ? groups[0] : groups.sorted { $0.count < $1.count }.dropLast().flatMap { $0 }
            for n in cut {
                guard let evs = events.first(where: { $0.0 == n })?.1 else { continue }
                for e in evs where e.ts >= s.end - 0.01 {
                    if e.event == "start" { break }
                    if e.event == "snapshot-installed" {
                        mark(.compactedPastCut)
                        break
                    }
                }
            }
        }
        return ExploreTarget.allCases.filter(hit.contains)
    }

    /// The election timeout the nodes ran with: the largest `set election-timeout`, else 150ms.
    static func electionTimeoutMs(_ steps: [StepLine]) -> Int {
        var ms = 0
        for s in steps where s.ok && s.text.hasPrefix("set election-timeout ") {
            if let v = parseDuration(String(s.text.split(separator: " ").last ?? "")) { ms = max(ms, v) }
        }
        return ms > 0 ? ms : 150
    }

    // MARK: Files

    static func parseEvents(_ text: String) -> [Event] {
        var out: [Event] = []
        for line in text.split(separator: "\n") {
            // Applies and commits are most of the lines and none of the targets.
            if line.contains(#""event":"apply""#) || line.contains(#""event":"commit""#) { continue }
            guard let e = NodeEventLine(parsing: String(line)), let ts = parseTimestamp(e.ts) else { continue }
            out.append(Event(ts: ts, line: e))
        }
        return out
    }

    /// Step lines of harness.log: `TIME  line N  STEP  ok (DETAIL) [MS]` (or `FAILED: ...`),
    /// TIME seconds since the `started` time of the first line, or a wall time.
    static func parseLog(_ text: String, events: [[Event]]) -> [StepLine] {
        let lines = text.split(separator: "\n")
        var origin: Double?
        if let first = lines.first, let r = first.range(of: " started ") {
            origin = parseTimestamp(String(first[r.upperBound...].split(separator: " ").first ?? ""))
        }
        var raw: [(t: String, text: String, ok: Bool, detail: String, ms: Double)] = []
        for line in lines.dropFirst() {
            let w = line.split(separator: " ").map(String.init)
            guard w.count >= 4, w[1] == "line", Int(w[2]) != nil else { continue }
            guard let k = w[3...].firstIndex(where: { $0 == "ok" || $0 == "FAILED:" || $0 == "pass" }) else { continue }
            let text = w[3..<k].joined(separator: " ")
            var detail = ""
            if w[k] == "ok", k + 1 < w.count, w[k + 1].hasPrefix("(") {
                var parts: [String] = []
                for word in w[(k + 1)...] {
                    parts.append(word)
                    if word.hasSuffix(")") { break }
                }
                detail = String(parts.joined(separator: " ").dropFirst().dropLast())
            }
            var ms = 0.0
            if let last = w.last, last.hasPrefix("["), last.hasSuffix("ms]") { ms = Double(last.dropFirst().dropLast(3)) ?? 0 }
            raw.append((w[0], text, w[k] == "ok", detail, ms))
        }
        if origin == nil, let cluster = raw.first(where: { $0.text.hasPrefix("cluster ") }), let t = Double(cluster.t.dropLast()) {
            // No start time written: the nodes' first events came during the cluster step.
            let firstEvent = events.compactMap { $0.first?.ts }.min()
            origin = firstEvent.map { $0 - (t - cluster.ms / 1000) }
        }
        return raw.compactMap { r in
            let end: Double
            if r.t.hasSuffix("s"), let rel = Double(r.t.dropLast()) {
                end = (origin ?? 0) + rel
            } else if let wall = parseTimestamp(r.t) {
                end = wall
            } else {
                return nil
            }
            return StepLine(end: end, text: r.text, ok: r.ok, detail: r.detail)
        }
    }

    /// "2026-12-02T14:24:29.414549Z" -> seconds since 1970 (UTC).
    static func parseTimestamp(_ s: String) -> Double? {
        let u = Array(s.utf8)
        guard u.count >= 20, u[4] == UInt8(ascii: "-"), u[10] == UInt8(ascii: "T"), u.last == UInt8(ascii: "Z") else { return nil }
        func num(_ a: Int, _ b: Int) -> Int? {
            var v = 0
            for i in a..<b {
                guard (48...57).contains(u[i]) else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 7), let d = num(8, 10), let h = num(11, 13), let mi = num(14, 16), let sec = num(17, 19)
        else { return nil }
        var frac = 0.0
        if u[19] == UInt8(ascii: ".") {
            var scale = 0.1
            for i in 20..<(u.count - 1) {
                guard (48...57).contains(u[i]) else { return nil }
                frac += Double(u[i] - 48) * scale
                scale /= 10
            }
        }
        // Days from the civil date (proleptic Gregorian), as in H. Hinnant's algorithm.
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let mp = (mo + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Double(days * 86400 + h * 3600 + mi * 60 + sec) + frac
    }
}
