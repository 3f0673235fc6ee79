import RaftNodeMachine
import RaftNodeWire

// Harness runs scenario files against a cluster and checks the run from the nodes' files.
// No NIO: the process world's back end is HarnessProcesses'.
//
//   Scenario.swift        the scenario language (SPEC section 2): steps, and a parser that
//                         reports file, line and a clear message before anything starts
//   Engine.swift          runs the steps against a ClusterBackend, on the run's RunClock
//   Backend.swift         ClusterBackend (how a step acts on a cluster), RunClock, outcomes
//   Load.swift            the background clients of `load`
//   NetworkState.swift    cuts, loss and delay as the scenario sets them (both worlds)
//   RunDirectory.swift    harness.log, history.jsonl, report.json
//   ScenarioRunner.swift  one scenario into a run directory, in either world, then the checker
//   Simulated/            the simulator's back end: time, node hosts, the simulated cluster
//   Explore*.swift        explore: generator, validity model, coverage, shrinker, the loop
//
// The language is kept apart from how a step acts on a cluster, so that both back ends (real
// processes, or the seeded simulator in simulated time) run the same files.

/// How a step names a node.
public enum NodeSelector: Sendable, Hashable, CustomStringConvertible {
    case named(String)
    /// The current leader (waiting for one up to the default timeout).
    case leader
    /// A running follower, chosen with the seed.
    case follower
    /// A node bound earlier with `as X`.
    case variable(String)

    public var description: String {
        switch self {
        case let .named(n): n
        case .leader: "leader"
        case .follower: "follower"
        case let .variable(v): "$" + v
        }
    }
}

/// A node selector and the variable it binds (`kill leader as old`).
public struct NodeRef: Sendable, Hashable, CustomStringConvertible {
    public var selector: NodeSelector
    public var binding: String?

    public init(selector: NodeSelector, binding: String? = nil) {
        self.selector = selector
        self.binding = binding
    }

    public var description: String { selector.description + (binding.map { " as \($0)" } ?? "") }
}

/// One step of a scenario.
public indirect enum Step: Sendable, Hashable {
    case set(key: String, value: String)
    case cluster([String])
    case start(NodeRef)
    case stop(NodeRef)
    case kill(NodeRef)
    /// SIGKILL, and what the node wrote but did not fsync is lost (a power cut for it alone).
    case crash(NodeRef)
    case pause(NodeRef)
    case resume(NodeRef)
    case wipe(NodeRef)
    case isolate(NodeRef)
    /// Groups of nodes that can reach each other; every node not named forms one more group.
    case partition([[NodeRef]])
    case heal
    case networkLoss(percent: Double, delayMs: ClosedRange<Int>?)
    case write(Int)
    case submit(count: Int, to: NodeRef, batch: String)
    case awaitCommitted(batch: String, withinMs: Int)
    case awaitNotCommitted(batch: String, forMs: Int)
    case snapshot(NodeRef)
    /// Starts a node with empty data and adds it through the leader: a new name, or a
    /// variable bound to a node removed before (added back under its name).
    case add(NodeRef)
    case remove(NodeRef)
    case sleep(ms: Int)
    case awaitLeader(among: [NodeRef], withinMs: Int, binding: String?)
    case expectLeader(NodeRef)
    case awaitNoLeader(among: [NodeRef], forMs: Int)
    case awaitConverged(withinMs: Int)
    /// NODE is receiving a snapshot (its role is `snapshotting`): to cut a transfer midway.
    case awaitSnapshotting(NodeRef, withinMs: Int)
    case expectSnapshot(NodeRef, SnapshotExpectation, atMost: Int? = nil)
    /// C clients in the background that put and get (P% gets) on K keys through the leader,
    /// until `load stop` or the end of the scenario.
    case load(clients: Int, readsPercent: Int, keys: Int)
    case loadStop
    case `repeat`(Int, [Located])
    case check

    public enum SnapshotExpectation: String, Sendable, Hashable {
        case installed = "installed-snapshot"
        case sent = "sent-snapshot"
        case none = "no-snapshot"
    }
}

/// A step with where it was written.
public struct Located: Sendable, Hashable {
    public var step: Step
    public var line: Int
    public var text: String
}

public struct Scenario: Sendable, Hashable {
    public var name: String
    public var file: String
    public var steps: [Located]
    /// Every node name the scenario declares (in `cluster` and `add`).
    public var nodes: [String]
    /// The one world it runs in (`# world: process` or `# world: sim` as its first line,
    /// SPEC section 2); nil for both.
    public var world: String?

    /// Whether it runs in `world` (`process` or `sim`).
    public func runs(in world: String) -> Bool { self.world == nil || self.world == world }
}

/// A scenario that cannot run, with where and why.
public struct ScenarioError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public var description: String { "\(file):\(line): \(message)" }
}

/// The settings a scenario may set, and their defaults (SPEC section 2).
/// The harness's own settings (SPEC section 2); the node settings a scenario sets are the
/// keys of `NodeSettings.table`.
public enum HarnessSetting: String, Sendable, CaseIterable {
    case valueSize = "value-size"
    case timeout

    /// The value of this setting written as text, or why it is not one.
    func parse(_ text: String) -> Result<Int, SettingError> {
        switch self {
        case .valueSize: NodeSettings.parse(text, unit: .size, name: rawValue, range: 0...Int.max)
        case .timeout: NodeSettings.parse(text, unit: .duration, name: rawValue, range: 1...Int.max)
        }
    }
}

/// Every key `set` takes: the node's, then the harness's.
public let scenarioSettingKeys: [String] = NodeSettings.table.compactMap(\.key) + HarnessSetting.allCases.map(\.rawValue)

/// Parses scenario text. Everything that can be checked before a run is: unknown steps and
/// settings, bad numbers and durations, nodes never declared, variables never bound,
/// batches never submitted, `repeat` without `end`.
public struct ScenarioParser {
    let file: String
    private var lines: [(number: Int, words: [String], text: String)] = []
    private var position = 0
    private var declared: Set<String> = []
    private var order: [String] = []
    private var variables: Set<String> = []
    private var batches: Set<String> = []

    public static func parse(_ text: String, file: String) throws(ScenarioError) -> Scenario {
        var parser = ScenarioParser(file: file)
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            if !words.isEmpty { parser.lines.append((i + 1, words, line.trimmingWhitespace())) }
        }
        // Names are declared by `cluster` and `add` anywhere in the file, so that a step may
        // name a node added later (`start n4` after `add n4` in an earlier repeat, say).
        for l in parser.lines where l.words.first == "cluster" || l.words.first == "add" {
            for name in l.words.dropFirst() where isValidNodeName(name) && !parser.declared.contains(name) {
                parser.declared.insert(name)
                parser.order.append(name)
            }
        }
        let steps = try parser.parseBlock(inRepeat: false)
        let base = file.split(separator: "/").last.map(String.init) ?? file
        let name = base.hasSuffix(".scenario") ? String(base.dropLast(".scenario".count)) : base
        // `# world: process` or `# world: sim` on the first line: what it shows exists in
        // that world only.
        var world: String?
        if let first = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first {
            let words = first.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.count >= 2, words[0] == "#", words[1] == "world:" || (words[1] == "world" && words.count >= 3 && words[2] == ":") {
                let value = words.last.map(String.init) ?? ""
                guard value == "process" || value == "sim" else {
                    throw ScenarioError(file: file, line: 1, message: "'# world:' takes process or sim, not '\(value)'")
                }
                world = value
            }
        }
        return Scenario(name: name, file: file, steps: steps, nodes: parser.order, world: world)
    }

    private func error(_ line: Int, _ message: String) -> ScenarioError {
        ScenarioError(file: file, line: line, message: message)
    }

    private mutating func parseBlock(inRepeat: Bool) throws(ScenarioError) -> [Located] {
        var steps: [Located] = []
        while position < lines.count {
            let (number, words, text) = lines[position]
            position += 1
            if words[0] == "end" {
                guard inRepeat else { throw error(number, "'end' without 'repeat'") }
                guard words.count == 1 else { throw error(number, "'end' takes nothing after it") }
                return steps
            }
            let step = try parseStep(words, line: number)
            steps.append(Located(step: step, line: number, text: text))
        }
        if inRepeat { throw error(lines.last?.number ?? 0, "'repeat' without 'end'") }
        return steps
    }

    private mutating func parseStep(_ w: [String], line: Int) throws(ScenarioError) -> Step {
        var words = Words(words: w, line: line, file: file)
        let verb = words.next()!
        let step: Step
        switch verb {
        case "set":
            let key = try words.expectWord("a setting name")
            guard NodeSettings.row(key: key) != nil || HarnessSetting(rawValue: key) != nil else {
                throw error(line, "unknown setting '\(key)'; known: \(scenarioSettingKeys.joined(separator: ", "))")
            }
            let value = try words.expectWord("a value for \(key)")
            let parsed = NodeSettings.row(key: key).map { NodeSettings.parse(value, as: $0) } ?? HarnessSetting(rawValue: key)!.parse(value)
            if case let .failure(problem) = parsed { throw error(line, problem.message) }
            step = .set(key: key, value: value)
        case "cluster":
            let names = words.rest()
            guard !names.isEmpty else { throw error(line, "'cluster' needs at least one node") }
            for n in names where !isValidNodeName(n) { throw error(line, "'\(n)' is not a node name ([a-z][a-z0-9-]*)") }
            guard Set(names).count == names.count else { throw error(line, "a node is named twice") }
            step = .cluster(names)
        case "start": step = .start(try nodeRef(&words))
        case "stop": step = .stop(try nodeRef(&words))
        case "kill": step = .kill(try nodeRef(&words))
        case "crash": step = .crash(try nodeRef(&words))
        case "pause": step = .pause(try nodeRef(&words))
        case "resume": step = .resume(try nodeRef(&words))
        case "wipe": step = .wipe(try nodeRef(&words))
        case "isolate": step = .isolate(try nodeRef(&words))
        case "snapshot": step = .snapshot(try nodeRef(&words))
        case "remove": step = .remove(try nodeRef(&words))
        case "add":
            guard let name = words.peek() else { throw error(line, "expected a node name after 'add'") }
            guard name.hasPrefix("$") || isValidNodeName(name) else { throw error(line, "'\(name)' is not a node name ([a-z][a-z0-9-]*)") }
            step = .add(try nodeRef(&words))
        case "partition":
            var groups: [[NodeRef]] = [[]]
            while words.peek() != nil {
                if words.peek() == "|" {
                    _ = words.next()
                    groups.append([])
                } else {
                    groups[groups.count - 1].append(try nodeRef(&words))
                }
            }
            guard groups.allSatisfy({ !$0.isEmpty }), !groups[0].isEmpty else { throw error(line, "'partition' needs groups of nodes separated by '|'") }
            step = .partition(groups)
        case "heal": step = .heal
        case "network":
            try words.expect("loss")
            let p = try words.expectWord("a percentage like 10%")
            guard p.hasSuffix("%"), let percent = Double(p.dropLast()), (0...100).contains(percent) else {
                throw error(line, "'\(p)' is not a percentage like 10%")
            }
            var delay: ClosedRange<Int>?
            if words.peek() == "delay" {
                _ = words.next()
                let d = try words.expectWord("a delay range like 5ms..50ms")
                let parts = d.split(separator: "..", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 2, let lo = parseDuration(parts[0]), let hi = parseDuration(parts[1]), lo <= hi else {
                    throw error(line, "'\(d)' is not a delay range like 5ms..50ms")
                }
                delay = lo...hi
            }
            step = .networkLoss(percent: percent, delayMs: delay)
        case "write":
            step = .write(try words.expectCount())
        case "submit":
            let n = try words.expectCount()
            try words.expect("to")
            let node = try nodeRef(&words, allowBinding: false)
            try words.expect("as")
            let batch = try words.expectWord("a batch name")
            batches.insert(batch)
            step = .submit(count: n, to: node, batch: batch)
        case "await":
            step = try parseAwait(&words, line: line)
        case "expect":
            // `expect NODE installed-snapshot` (NODE may be `leader`) or `expect leader NODE`.
            let node = try nodeRef(&words)
            if let what = words.peek(), let e = Step.SnapshotExpectation(rawValue: what) {
                _ = words.next()
                // `installed-snapshot at most N`: a count bound on the installs (an extension).
                var bound: Int?
                if e == .installed, words.peek() == "at" {
                    _ = words.next()
                    try words.expect("most")
                    bound = try words.expectCount()
                }
                step = .expectSnapshot(node, e, atMost: bound)
            } else if node == NodeRef(selector: .leader), words.peek() != nil {
                step = .expectLeader(try nodeRef(&words))
            } else {
                let what = try words.expectWord("installed-snapshot, sent-snapshot or no-snapshot")
                throw error(line, "'expect \(node) \(what)': expected installed-snapshot, sent-snapshot or no-snapshot")
            }
        case "sleep":
            step = .sleep(ms: try words.expectDuration())
        case "repeat":
            let n = try words.expectCount()
            try words.expectEnd()
            step = .repeat(n, try parseBlock(inRepeat: true))
        case "check":
            step = .check
        case "load":
            if words.peek() == "stop" {
                _ = words.next()
                step = .loadStop
            } else {
                let clients = try words.expectCount()
                try words.expect("clients")
                var reads = 0
                var keys = 16
                while let w = words.next() {
                    switch w {
                    case "reads":
                        let p = try words.expectWord("a percentage like 30%")
                        guard p.hasSuffix("%"), let n = Int(p.dropLast()), (0...100).contains(n) else {
                            throw error(line, "'\(p)' is not a whole percentage like 30%")
                        }
                        reads = n
                    case "keys":
                        keys = try words.expectCount()
                    default:
                        throw error(line, "unexpected '\(w)' in 'load'; expected 'reads P%' or 'keys K'")
                    }
                }
                step = .load(clients: clients, readsPercent: reads, keys: keys)
            }
        default:
            throw error(line, "unknown step '\(verb)'")
        }
        try words.expectEnd()
        return step
    }

    private mutating func parseAwait(_ words: inout Words, line: Int) throws(ScenarioError) -> Step {
        let what = try words.expectWord("leader, no-leader, converged, snapshotting, committed or not-committed")
        switch what {
        case "leader":
            var among: [NodeRef] = []
            if words.peek() == "among" {
                _ = words.next()
                while let w = words.peek(), w != "within" {
                    among.append(try nodeRef(&words))
                }
                guard !among.isEmpty else { throw error(line, "'among' needs nodes") }
            }
            try words.expect("within")
            let ms = try words.expectDuration()
            var binding: String?
            if words.peek() == "as" {
                _ = words.next()
                binding = try words.expectWord("a variable name")
                variables.insert(binding!)
            }
            return .awaitLeader(among: among, withinMs: ms, binding: binding)
        case "no-leader":
            try words.expect("among")
            var among: [NodeRef] = []
            while let w = words.peek(), w != "for" {
                among.append(try nodeRef(&words))
            }
            guard !among.isEmpty else { throw error(line, "'await no-leader among' needs nodes") }
            try words.expect("for")
            return .awaitNoLeader(among: among, forMs: try words.expectDuration())
        case "converged":
            try words.expect("within")
            return .awaitConverged(withinMs: try words.expectDuration())
        case "snapshotting":
            let node = try nodeRef(&words)
            try words.expect("within")
            return .awaitSnapshotting(node, withinMs: try words.expectDuration())
        case "committed":
            let batch = try words.expectWord("a batch name")
            guard batches.contains(batch) else { throw error(line, "no batch '\(batch)' was submitted before this step") }
            try words.expect("within")
            return .awaitCommitted(batch: batch, withinMs: try words.expectDuration())
        case "not-committed":
            let batch = try words.expectWord("a batch name")
            guard batches.contains(batch) else { throw error(line, "no batch '\(batch)' was submitted before this step") }
            try words.expect("for")
            return .awaitNotCommitted(batch: batch, forMs: try words.expectDuration())
        default:
            throw error(line, "unknown 'await \(what)'; expected leader, no-leader, converged, snapshotting, committed or not-committed")
        }
    }

    private mutating func nodeRef(_ words: inout Words, allowBinding: Bool = true) throws(ScenarioError) -> NodeRef {
        let w = try words.expectWord("a node")
        let selector: NodeSelector
        if w == "leader" {
            selector = .leader
        } else if w == "follower" {
            selector = .follower
        } else if w.hasPrefix("$") {
            let v = String(w.dropFirst())
            guard variables.contains(v) else { throw error(words.line, "'\(w)' is not bound by an earlier 'as \(v)'") }
            selector = .variable(v)
        } else {
            guard isValidNodeName(w) else { throw error(words.line, "'\(w)' is not a node name, leader, follower or $variable") }
            guard declared.contains(w) else { throw error(words.line, "unknown node '\(w)': no 'cluster' or 'add' step names it") }
            selector = .named(w)
        }
        var binding: String?
        if allowBinding && words.peek() == "as" {
            _ = words.next()
            binding = try words.expectWord("a variable name")
            variables.insert(binding!)
        }
        return NodeRef(selector: selector, binding: binding)
    }
}

/// The words of one line, read in order.
struct Words {
    let words: [String]
    let line: Int
    let file: String
    var index = 0

    init(words: [String], line: Int, file: String) {
        self.words = words
        self.line = line
        self.file = file
    }

    func peek() -> String? { index < words.count ? words[index] : nil }

    mutating func next() -> String? {
        defer { index += 1 }
        return peek()
    }

    mutating func rest() -> [String] {
        defer { index = words.count }
        return Array(words[min(index, words.count)...])
    }

    func error(_ message: String) -> ScenarioError { ScenarioError(file: file, line: line, message: message) }

    mutating func expectWord(_ what: String) throws(ScenarioError) -> String {
        guard let w = next() else { throw error("expected \(what) after '\(words.joined(separator: " "))'") }
        return w
    }

    mutating func expect(_ word: String) throws(ScenarioError) {
        let w = next()
        guard w == word else { throw error("expected '\(word)'" + (w.map { ", found '\($0)'" } ?? " at the end of the line")) }
    }

    mutating func expectCount() throws(ScenarioError) -> Int {
        let w = try expectWord("a number")
        guard let n = Int(w), n > 0 else { throw error("'\(w)' is not a positive whole number") }
        return n
    }

    mutating func expectDuration() throws(ScenarioError) -> Int {
        let w = try expectWord("a duration")
        guard let ms = parseDuration(w) else { throw error("'\(w)' is not a duration like 150ms, 2s or 1m") }
        return ms
    }

    func expectEnd() throws(ScenarioError) {
        if index < words.count { throw error("unexpected '\(words[index...].joined(separator: " "))'") }
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}
