import Foundation
import RaftNodeWire

/// harness.log as report.html reads it: the header, each step with its time, and the faults
/// the steps made (a node down, paused or cut off, a lossy network).
///
/// Two formats are read. The harness writes (Engine.report, ScenarioRunner):
///
/// ```
/// scenario NAME file FILE seed N ... started RFC3339
///    0.440s  line 8   write 20                                 ok (20 acknowledged) [143ms]
///    1.020s  line 9   kill leader as old                       ok (n1) [0ms]
///    3.514s  line 12  expect leader n3                         FAILED: the leader is n1, not n3 [10000ms]
/// verdict fail in 3514ms
/// ```
///
/// where the seconds are counted from `started` and the step ended then; the older synthetic
/// lines of the fixtures are `RFC3339 STEP... ok 100ms`, the time being the step's start.
/// Any other line (converged, crash, load stopped) is skipped.
struct HarnessLog {
    var scenario: String?
    var file: String?
    var seed: UInt64?
    var world: String?
    var startedMicros: Int64?
    var steps: [LoggedStep] = []
    /// `pass`, `fail` or `unknown` of the last `verdict` line.
    var verdict: String?

    init(text: String) {
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw)
            if line.hasPrefix("scenario ") {
                readHeader(line)
            } else if line.hasPrefix("verdict ") {
                verdict = line.split(separator: " ").dropFirst().first.map(String.init)
            } else if let step = Self.parseStep(line, started: startedMicros) ?? Self.parseOldStep(line) {
                steps.append(step)
            }
        }
    }

    mutating func readHeader(_ line: String) {
        let words = line.split(separator: " ").map(String.init)
        func after(_ key: String) -> String? {
            guard let i = words.firstIndex(of: key), i + 1 < words.count else { return nil }
            return words[i + 1]
        }
        scenario = after("scenario")
        file = after("file")
        seed = after("seed").flatMap { UInt64($0) }
        world = after("world") ?? (words.contains("raft-node") ? "process" : nil)
        startedMicros = after("started").flatMap(Timestamp.unixMicros(rfc3339:))
    }

    /// `%8.3fs  line %-3d %-40@ %@ [%dms]` (Engine.report).
    static func parseStep(_ line: String, started: Int64?) -> LoggedStep? {
        guard let started else { return nil }
        let chars = Array(line)
        var i = 0
        while i < chars.count, chars[i] == " " { i += 1 }
        var j = i
        while j < chars.count, chars[j] != " " { j += 1 }
        let secondsWord = String(chars[i..<j])
        guard secondsWord.hasSuffix("s"), let seconds = Double(secondsWord.dropLast()), seconds >= 0 else { return nil }
        let lineTag = Array("  line ")
        guard j + lineTag.count <= chars.count, Array(chars[j..<(j + lineTag.count)]) == lineTag else { return nil }
        var k = j + lineTag.count
        let numberStart = k
        while k < chars.count, chars[k].isASCII, chars[k].isNumber { k += 1 }
        guard k > numberStart, let scenarioLine = Int(String(chars[numberStart..<k])) else { return nil }
        // The number is padded to three places, then one space.
        let textStart = numberStart + max(3, k - numberStart) + 1
        guard textStart <= chars.count, chars[k..<min(textStart, chars.count)].allSatisfy({ $0 == " " }) else { return nil }
        var body = String(chars[textStart...])
        var ms = 0
        if body.hasSuffix("ms]"), let open = body.range(of: " [", options: .backwards),
            let n = Int(body[open.upperBound..<body.index(body.endIndex, offsetBy: -3)])
        {
            ms = n
            body = String(body[..<open.lowerBound])
        }
        guard let (text, outcome) = splitOutcome(body) else { return nil }
        let end = started + Int64((seconds * 1_000_000).rounded())
        return LoggedStep(scenarioLine: scenarioLine, text: text, outcome: outcome, start: end - Int64(ms) * 1000, end: end)
    }

    /// `RFC3339 STEP... OUTCOME Nms` (the synthetic lines of fixtures/runs).
    static func parseOldStep(_ line: String) -> LoggedStep? {
        var words = line.split(separator: " ").map(String.init)
        guard words.count >= 3, let ts = Timestamp.unixMicros(rfc3339: words[0]) else { return nil }
        words.removeFirst()
        var ms = 0
        if let last = words.last, last.hasSuffix("ms"), let n = Int(last.dropLast(2)) {
            ms = n
            words.removeLast()
        }
        guard let (text, outcome) = splitOutcome(words.joined(separator: " ")) else { return nil }
        return LoggedStep(scenarioLine: nil, text: text, outcome: outcome, start: ts, end: ts + Int64(ms) * 1000)
    }

    /// The step's text and its outcome (`ok`, `ok (DETAIL)`, `FAILED: WHY`, `pass N of M`):
    /// the first outcome after a space (and any padding: `%-40@` pads on some systems).
    static func splitOutcome(_ body: String) -> (String, String)? {
        let chars = Array(body)
        func outcomeStarts(at p: Int) -> Bool {
            let rest = String(chars[p...])
            return rest == "ok" || rest.hasPrefix("ok (") || rest.hasPrefix("FAILED") || rest.hasPrefix("pass ")
        }
        var p = 0
        while p + 1 < chars.count {
            if chars[p] == " ", chars[p + 1] != " ", outcomeStarts(at: p + 1) {
                let text = String(chars[..<p]).trimmingCharacters(in: .whitespaces)
                return text.isEmpty ? nil : (text, String(chars[(p + 1)...]))
            }
            p += 1
        }
        return nil
    }
}

/// One step of harness.log.
struct LoggedStep {
    /// The step's line in the scenario file (nil in the older format).
    var scenarioLine: Int?
    var text: String
    /// `ok`, `ok (DETAIL)`, `FAILED: WHY` or `pass N of M`.
    var outcome: String
    /// Microseconds since the epoch.
    var start: Int64
    var end: Int64

    var failed: Bool { outcome.hasPrefix("FAILED") }
    var succeeded: Bool { outcome.hasPrefix("ok") }
    var verb: String { String(text.split(separator: " ").first ?? "") }
    /// What `ok (...)` says: the node a selector chose, among other things.
    var detail: String? {
        guard outcome.hasPrefix("ok ("), outcome.hasSuffix(")") else { return nil }
        return String(outcome.dropFirst(4).dropLast())
    }

    /// The node the step acted on: the first word of its detail (`n1`, `n1, nothing
    /// unsynced`, `n4 at 12`), else a literal name in its text.
    var node: String? {
        if let d = detail, let first = d.split(whereSeparator: { $0 == " " || $0 == "," }).first, Self.isNodeName(String(first)) {
            return String(first)
        }
        let words = text.split(separator: " ").map(String.init)
        if words.count >= 2, Self.isNodeName(words[1]), words[1] != "leader", words[1] != "follower" { return words[1] }
        return nil
    }

    /// The groups of a `partition` as it resolved them (`n1 n2 | n3`).
    var partitionGroups: [[String]] {
        let source = detail ?? String(text.dropFirst("partition".count))
        return source.split(separator: "|").map { $0.split(separator: " ").map(String.init).filter(Self.isNodeName) }.filter { !$0.isEmpty }
    }

    static func isNodeName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
    }
}

/// A stretch of time on a lane: a role, a fault.
struct Band {
    var start: Int64
    var end: Int64
    var label: String
}

/// What the steps did to the nodes, as bands: down (kill, crash, stop until start or add),
/// paused (pause until resume), cut off (isolate, partition until heal or the next
/// partition), and the network's loss (network loss until heal).
struct Faults {
    var down: [String: [Band]] = [:]
    var paused: [String: [Band]] = [:]
    var cut: [String: [Band]] = [:]
    var loss: [Band] = []

    init(steps: [LoggedStep], end runEnd: Int64) {
        var openDown: [String: (Int64, String)] = [:]
        var openPause: [String: Int64] = [:]
        var openCut: [String: (Int64, String)] = [:]
        var openLoss: (Int64, String)?
        func closeCuts(at t: Int64) {
            for (n, (s, label)) in openCut.sorted(by: { $0.key < $1.key }) { cut[n, default: []].append(Band(start: s, end: t, label: label)) }
            openCut = [:]
        }
        for step in steps where step.succeeded {
            let node = step.node
            switch step.verb {
            case "kill", "crash", "stop":
                if let n = node, openDown[n] == nil {
                    openDown[n] = (step.end, step.verb == "kill" ? "killed" : step.verb == "crash" ? "crashed" : "stopped")
                }
            case "start", "add":
                if let n = node, let (s, label) = openDown.removeValue(forKey: n) {
                    down[n, default: []].append(Band(start: s, end: max(s, step.start), label: label))
                }
            case "pause":
                if let n = node, openPause[n] == nil { openPause[n] = step.end }
            case "resume":
                if let n = node, let s = openPause.removeValue(forKey: n) { paused[n, default: []].append(Band(start: s, end: step.end, label: "paused")) }
            case "isolate":
                if let n = node, openCut[n] == nil { openCut[n] = (step.end, "isolated") }
            case "partition":
                closeCuts(at: step.end)
                let groups = step.partitionGroups
                let label = "partition " + groups.map { $0.joined(separator: " ") }.joined(separator: " | ")
                for n in groups.joined() { openCut[n] = (step.end, label) }
            case "heal":
                closeCuts(at: step.end)
                if let (s, label) = openLoss { loss.append(Band(start: s, end: step.end, label: label)) }
                openLoss = nil
            case "network":
                if let (s, label) = openLoss { loss.append(Band(start: s, end: step.end, label: label)) }
                let words = step.text.split(separator: " ")
                let zero = words.count >= 3 && (words[2] == "0%" || words[2] == "0")
                openLoss = zero && words.count == 3 ? nil : (step.end, step.text)
            default:
                break
            }
        }
        for (n, (s, label)) in openDown { down[n, default: []].append(Band(start: s, end: max(s, runEnd), label: label)) }
        for (n, s) in openPause { paused[n, default: []].append(Band(start: s, end: max(s, runEnd), label: "paused")) }
        closeCuts(at: runEnd)
        if let (s, label) = openLoss { loss.append(Band(start: s, end: max(s, runEnd), label: label)) }
    }
}
