import Foundation
import Raft

// `harness explore`, part 2 of 5: the weighted grammar. A scenario is a profile of
// settings, a cluster, a few macros (a macro is a short sequence of steps aimed at one state
// where membership and snapshot bugs live), then the liveness phase. Every macro is checked
// step by step against `ExploreModel`; one the model refuses is dropped and another drawn.

/// One generated scenario.
public struct ExploreScenario: Sendable, Hashable {
    public var name: String
    public var seed: UInt64
    public var index: Int
    /// The seed the scenario runs with (follower choices, loss and delay).
    public var runSeed: UInt64
    public var profile: String
    /// The macros drawn, in order.
    public var macros: [String]
    /// Everything before the liveness phase: settings, cluster, macros.
    public var body: [ExploreStep]
    public var liveness: [ExploreStep]

    /// The marker line of the liveness phase.
    public static let livenessMarker = "# liveness"

    /// The scenario file: a comment header, the body, `# liveness`, the liveness phase.
    public var text: String { Self.render(header: header, body: body, liveness: liveness) }

    public var header: [String] {
        [
            "# explore seed \(seed), scenario \(index), profile \(profile); run seed \(runSeed)",
            "# macros: " + macros.joined(separator: ", "),
        ]
    }

    public static func render(header: [String], body: [ExploreStep], liveness: [ExploreStep]) -> String {
        var lines = header
        lines += body.flatMap { $0.lines() }
        lines.append(livenessMarker)
        lines += liveness.flatMap { $0.lines() }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Steps before the liveness phase in a scenario file (blank and comment lines aside).
    public static func stepsBeforeLiveness(_ text: String) -> Int {
        var n = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line == livenessMarker { return n }
            if line.isEmpty || line.hasPrefix("#") { continue }
            n += 1
        }
        return n
    }
}

/// Generates scenarios from a seed: scenario `index` of seed `seed` is the same text in any
/// process (nothing depends on the order of a Set or a Dictionary).
public enum ExploreGenerator {
    public static func scenario(seed: UInt64, index: Int, maxValueSize: Int? = nil) -> ExploreScenario {
        var g = Gen(seed: seed, index: index, maxValueSize: maxValueSize ?? Int.max)
        return g.generate()
    }

    /// The smallest `maxValueSize`: the default value size (SPEC section 2's `value-size`).
    public static let smallestMaxValueSize = 100

    /// The macros and their weights, for the README and the tests.
    public static let macroNames = Macro.allCases.map(\.rawValue)
}

enum Macro: String, CaseIterable {
    case write, submit
    case inflight
    case cutFollowerCompact = "cut-follower-compact"
    case killRestart = "kill-restart"
    case pauseResume = "pause-resume"
    case cutLeaderChange = "cut-leader-change"
    case removeLeader = "remove-leader"
    case replaceWiped = "replace-wiped"
    case addFresh = "add-fresh"
    case removeFollower = "remove-follower"
    case restartAll = "restart-all"
    case noLeader = "no-leader"
    case loss
    case partitionMinority = "partition-minority"
    case snapshot
    case converge
    case sleep
    case restore
}

/// Steps drawn for a macro, each applied to a copy of the model as it is added.
/// The generator keeps a healthy majority after every step but in the macros that take it
/// away on purpose (and give it back).
struct Draft {
    var m: ExploreModel
    var steps: [ExploreStep] = []
    var allowQuorumLoss = false

    mutating func add(_ s: ExploreStep) throws(ExploreInvalid) {
        try m.apply(s)
        guard !m.started || m.quorum || allowQuorumLoss else { throw ExploreInvalid("'\(s.line)' leaves no healthy majority") }
        steps.append(s)
    }
}

struct Gen {
    var rng: SeededRandom
    let seed: UInt64
    let index: Int
    var m = ExploreModel()
    var body: [ExploreStep] = []
    var macros: [String] = []
    var nextVar = 1
    var nextName = 1
    var profile = "default"

    /// No `value-size` above this, and no profile that needs more (`--max-value-size`).
    let maxValueSize: Int

    init(seed: UInt64, index: Int, maxValueSize: Int = Int.max) {
        self.seed = seed
        self.index = index
        self.maxValueSize = maxValueSize
        var mix = SeededRandom(seed: seed ^ 0x6578_706c_6f72_65)
        var h = mix.next()
        for _ in 0...(index % 7) { h = mix.next() }
        rng = SeededRandom(seed: h ^ (UInt64(index) &* 0x9e37_79b9_7f4a_7c15))
    }

    // MARK: Draws

    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.count)) }
    mutating func chance(_ p: Double) -> Bool { rng.chance(p) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
    mutating func weighted<T>(_ xs: [(T, Double)]) -> T {
        let total = xs.reduce(0) { $0 + $1.1 }
        var x = Double(rng.next() >> 11) * 0x1.0p-53 * total
        for (v, w) in xs {
            if x < w { return v }
            x -= w
        }
        return xs.last!.0
    }

    mutating func variable(_ prefix: String) -> String {
        defer { nextVar += 1 }
        return "\(prefix)\(nextVar)"
    }

    mutating func freshName() -> String {
        while m.declared.contains("n\(nextName)") { nextName += 1 }
        defer { nextName += 1 }
        return "n\(nextName)"
    }

    /// The `value-size` the settings give (SPEC's default, 100 bytes, when none does).
    func valueSize(of steps: [ExploreStep]) -> Int {
        var m = ExploreModel()
        for case let .set(k, v) in steps where k == "value-size" { try? m.set(k, v) }
        return m.settings.valueSize
    }

    // MARK: A scenario

    mutating func generate() -> ExploreScenario {
        let runSeed = 1 + rng.next() % 999_999
        setup()
        let count = int(3...6)
        var drawn = 0
        var attempts = 0
        while drawn < count && attempts < 60 {
            attempts += 1
            let macro = weighted(Macro.allCases.map { ($0, weight($0)) }.filter { $0.1 > 0 })
            var d = Draft(m: m, allowQuorumLoss: macro == .noLeader || macro == .restartAll)
            do {
                try build(macro, &d)
            } catch {
                continue
            }
            guard !d.steps.isEmpty, d.m.quorum else { continue }
            m = d.m
            body += d.steps
            macros.append(macro.rawValue)
            drawn += 1
        }
        // The liveness phase cannot fail to exist: every macro leaves a restorable state.
        let liveness = (try? m.liveness(expectSnapshots: chance(0.5))) ?? []
        return ExploreScenario(
            name: String(format: "explore-%llu-%04d", seed, index), seed: seed, index: index, runSeed: runSeed, profile: profile,
            macros: macros, body: body, liveness: liveness)
    }

    mutating func setup() {
        let bigValues = [32 << 10, 64 << 10].filter { $0 <= maxValueSize }
        profile = weighted([("default", 2), ("compact", 3), ("slow", 4.5)] + (bigValues.isEmpty ? [] : [("big", 1)]))
        var s: [ExploreStep] = [.set("timeout", "20s")]
        if chance(0.25) { s.append(.set("election-timeout", pick(["300ms", "500ms"]))) }
        if chance(0.15) { s.append(.set("max-entries-per-request", pick(["10", "50"]))) }
        switch profile {
        case "compact":
            s.append(.set("snapshot-threshold", "\(pick([20, 40, 60, 100]))"))
            s.append(.set("snapshot-trailing", "\(pick([5, 10]))"))
            let v = pick([100, 400, 4096].filter { $0 <= maxValueSize })
            if v != 100 { s.append(.set("value-size", size(v))) }
            if chance(0.3) { s.append(.set("snapshot-chunk", pick(["4KiB", "1KiB"]))) }
        case "slow":
            // Value sizes and chunks such that a full state (97 keys) is about 1500-1900
            // chunks: a transfer lasts long enough to be seen, and to be cut.
            let pairs = [((400, 16), 4.0), ((1024, 32), 3), ((4096, 128), 3), ((32 << 10, 1024), 1), ((64 << 10, 2048), 1)]
            let allowed = pairs.filter { $0.0.0 <= maxValueSize }
            let (v, c) = weighted(allowed.isEmpty ? [((maxValueSize, max(16, maxValueSize / 25)), 1.0)] : allowed)
            s.append(.set("snapshot-threshold", "\(pick([30, 50]))"))
            s.append(.set("snapshot-trailing", "\(pick([5, 10]))"))
            s.append(.set("snapshot-chunk", size(c)))
            s.append(.set("value-size", size(v)))
        case "big":
            s.append(.set("snapshot-threshold", "50"))
            s.append(.set("snapshot-trailing", "10"))
            s.append(.set("value-size", size(pick(bigValues))))
            if chance(0.5) { s.append(.set("snapshot-chunk", "16KiB")) }
        default:
            let sizes = [1024, 4096].filter { $0 <= maxValueSize }
            if !sizes.isEmpty, chance(0.3) { s.append(.set("value-size", size(pick(sizes)))) }
        }
        let n = weighted([(3, 5.0), (4, 1), (5, 3)])
        let names = (1...n).map { "n\($0)" }
        nextName = n + 1
        s.append(.cluster(names))
        s.append(.awaitLeader(withinMs: 20_000))
        s.append(.write(int(10...30)))
        // Half the scenarios run concurrent clients through every macro (check 6 reads
        // their history); not with values above 4 KiB, where their writes would fill the disk.
        if valueSize(of: s) <= 4096, chance(0.5) {
            s.append(.load(clients: int(2...4), readsPercent: pick([0, 30, 50]), keys: pick([4, 8, 16])))
        }
        var d = Draft(m: m)
        for step in s { try? d.add(step) }
        m = d.m
        body = d.steps
    }

    var small: Bool { m.settings.threshold < 1000 }

    func weight(_ macro: Macro) -> Double {
        let impaired = m.impairedCount > 0
        switch macro {
        case .write: return 1.5
        case .submit: return m.cutActive || m.lossActive ? 0 : 0.8
        case .inflight: return m.cutActive || m.lossActive ? 0 : 2
        case .cutFollowerCompact: return small && !m.cutActive ? 4 : 0
        case .killRestart: return 3
        case .pauseResume: return 1.2
        case .cutLeaderChange: return m.cutActive ? 0 : 3.5
        case .removeLeader: return m.voters >= 4 || (m.voters == 3 && !impaired) ? 2.5 : 0.5
        case .replaceWiped: return 2.5
        case .addFresh: return m.voters < 6 ? 1.2 : 0
        case .removeFollower: return m.voters >= 4 ? 0.8 : 0
        case .restartAll: return impaired ? 0.2 : 1.2
        case .noLeader: return impaired ? 0 : 0.9
        case .loss: return 1.5
        case .partitionMinority: return m.voters >= 5 && !m.cutActive ? 0.8 : 0
        case .snapshot: return 0.5
        case .converge: return m.impairedCount > 0 ? 0 : 0.6
        case .sleep: return 0.3
        case .restore: return impaired || m.cutActive ? 2.5 : 0
        }
    }

    /// Writes that surely compact the leader's log past a node cut off now.
    mutating func compactingWrites() -> Int { m.needLag + int(0...30) }

    mutating func writesWhileImpaired(_ d: inout Draft, compact: Bool) throws(ExploreInvalid) {
        if compact && small {
            if !d.m.leaderSettled { try d.add(.awaitLeader(withinMs: 30_000)) }
            try d.add(.sleep(ms: d.m.staleMs))
            let n = compactingWrites()
            if chance(0.3) {
                let first = n / 2
                try d.add(.write(first))
                try d.add(.snapshot(.leader))
                try d.add(.write(n - first))
            } else {
                try d.add(.write(n))
            }
        } else {
            try d.add(.write(int(5...30)))
        }
    }

    /// After X came back lagging: maybe wait for its snapshot transfer and kill it midway,
    /// then start it again (or leave it down for the liveness phase).
    mutating func maybeCutTransfer(_ d: inout Draft, _ ref: ExploreRef, p: Double) throws(ExploreInvalid) {
        guard let i = d.m.slotIndex(ref), d.m.slots[i].lag >= d.m.needLag, d.m.slowTransfer, chance(p) else { return }
        try d.add(.awaitSnapshotting(ref, withinMs: 30_000))
        try d.add(.kill(ExploreBound(ref)))
        if chance(0.5) { try d.add(.write(int(3...15))) }
        if chance(0.8) { try d.add(.start(ref)) }
    }

    mutating func build(_ macro: Macro, _ d: inout Draft) throws(ExploreInvalid) {
        switch macro {
        case .write:
            try d.add(.write(int(5...40)))
        case .submit:
            let b = variable("b")
            try d.add(.submit(count: int(2...10), to: .leader, batch: b))
            try d.add(.awaitCommitted(b, withinMs: 30_000))
        case .inflight:
            // Puts in flight at the leader when it is lost: never awaited (they may commit
            // or not); the checker holds the acknowledged ones to account.
            try d.add(.submit(count: int(5...20), to: .leader, batch: variable("b")))
            let r = Double(rng.next() >> 11) * 0x1.0p-53
            if r < 0.3 {
                let v = variable("d")
                try d.add(.kill(ExploreBound(.leader, as: v)))
                try d.add(.write(int(5...20)))
                if chance(0.7) { try d.add(.start(.variable(v))) }
            } else if r < 0.5 {
                let v = variable("p")
                try d.add(.pause(ExploreBound(.leader, as: v)))
                try d.add(.write(int(5...20)))
                if chance(0.7) { try d.add(.resume(.variable(v))) }
            } else if r < 0.75 {
                try d.add(.isolate(ExploreBound(.leader, as: variable("l"))))
                try d.add(.write(int(5...20)))
                if chance(0.7) { try d.add(.heal) }
            } else if r < 0.9 {
                let v = variable("r")
                try d.add(.remove(ExploreBound(.leader, as: v)))
                try d.add(.sleep(ms: 2000))
                try d.add(.write(int(5...20)))
            } else {
                let v = variable("d")
                try d.add(.stop(ExploreBound(.leader, as: v)))
                try d.add(.write(int(5...20)))
                try d.add(.start(.variable(v)))
            }
        case .cutFollowerCompact:
            let c = variable("c")
            try d.add(.isolate(ExploreBound(.follower, as: c)))
            try writesWhileImpaired(&d, compact: true)
            if chance(0.3) { try d.add(.sleep(ms: pick([300, 1000]))) }
            try d.add(.heal)
            try maybeCutTransfer(&d, .variable(c), p: 0.8)
        case .killRestart:
            let v = variable("d")
            let who: ExploreRef = chance(0.3) ? .leader : .follower
            try d.add(chance(0.7) ? .kill(ExploreBound(who, as: v)) : .stop(ExploreBound(who, as: v)))
            if who == .leader && chance(0.5) { try d.add(.awaitLeader(withinMs: 20_000)) }
            try writesWhileImpaired(&d, compact: chance(0.7))
            try d.add(.start(.variable(v)))
            try maybeCutTransfer(&d, .variable(v), p: 0.8)
        case .pauseResume:
            let v = variable("p")
            try d.add(.pause(ExploreBound(chance(0.35) ? .leader : .follower, as: v)))
            try writesWhileImpaired(&d, compact: chance(0.6))
            try d.add(.resume(.variable(v)))
            try maybeCutTransfer(&d, .variable(v), p: 0.5)
        case .cutLeaderChange:
            // The leader cut off right before a configuration change: the change goes to it
            // (its followers still agree on it for an election timeout), it appends the
            // entry, cannot commit it and steps down; the change is retried on the new leader.
            let l = variable("l")
            var active = true
            if d.m.voters >= 5 && chance(0.3) {
                try d.add(.partition([ExploreBound(.leader, as: l), ExploreBound(.follower, as: variable("f"))]))
                active = false
            } else {
                try d.add(.isolate(ExploreBound(.leader, as: l)))
            }
            let down = d.m.slots.indices.filter { d.m.slots[$0].active && d.m.slots[$0].member && d.m.slots[$0].down }
            let r = Double(rng.next() >> 11) * 0x1.0p-53
            if r < 0.2, let i = down.first {
                try d.add(.remove(ExploreBound(d.m.slots[i].ref)))
            } else if r < 0.4 {
                // Puts to the cut-off leader, then the change: neither may commit there.
                let b = variable("b")
                try d.add(.submit(count: int(2...5), to: .variable(l), batch: b))
                try d.add(.add(.named(freshName())))
                try d.add(.awaitNotCommitted(b, forMs: 1000))
            } else {
                try d.add(.add(.named(freshName())))
            }
            if chance(0.5) { try writesWhileImpaired(&d, compact: chance(0.4)) }
            var killed = false
            if active && chance(0.3) {
                try d.add(.kill(ExploreBound(.variable(l))))
                killed = true
            }
            if chance(0.7) {
                try d.add(.heal)
                if killed && chance(0.7) { try d.add(.start(.variable(l))) }
            }
        case .removeLeader:
            let r = variable("r")
            try d.add(.remove(ExploreBound(.leader, as: r)))
            try d.add(.sleep(ms: 2000))
            try d.add(.write(int(5...20)))
            if chance(0.5) || d.m.voters < 3 { try d.add(.add(.variable(r))) }
        case .replaceWiped:
            let existing = d.m.slots.indices.filter { d.m.slots[$0].active && d.m.slots[$0].member && d.m.slots[$0].down && !d.m.slots[$0].exiting }
            let ref: ExploreRef
            if let i = existing.first, chance(0.4) {
                ref = d.m.slots[i].ref
            } else {
                let w = variable("w")
                ref = .variable(w)
                try d.add(chance(0.6) ? .kill(ExploreBound(.follower, as: w)) : .stop(ExploreBound(.follower, as: w)))
                if chance(0.4) { try d.add(.write(int(5...20))) }
            }
            if chance(0.5) {
                try d.add(.wipe(ref))
                try d.add(.remove(ExploreBound(ref)))
            } else {
                try d.add(.remove(ExploreBound(ref)))
                try d.add(.wipe(ref))
            }
            try writesWhileImpaired(&d, compact: chance(0.5))
            try d.add(.add(ref))
        case .addFresh:
            if small && d.m.totalWrites < d.m.needLag && chance(0.7) { try d.add(.write(d.m.needLag - d.m.totalWrites + int(5...20))) }
            try d.add(.add(.named(freshName())))
        case .removeFollower:
            let r = variable("r")
            try d.add(.remove(ExploreBound(.follower, as: r)))
            try d.add(.sleep(ms: 2000))
            try d.add(.write(int(5...20)))
            if chance(0.4) { try d.add(.add(.variable(r))) }
        case .restartAll:
            if d.m.lostNames == 0 && chance(0.5) {
                let names = d.m.memberNames
                let kill = chance(0.6)
                for n in names { try d.add(kill ? .kill(ExploreBound(.named(n))) : .stop(ExploreBound(.named(n)))) }
                for n in names { try d.add(.start(.named(n))) }
                try d.add(.awaitLeader(withinMs: 30_000))
            } else {
                let r = variable("s")
                try d.add(.repeat(max(1, d.m.voters - 1), [.stop(ExploreBound(.follower, as: r)), .start(.variable(r))]))
                let l = variable("s")
                try d.add(.stop(ExploreBound(.leader, as: l)))
                try d.add(.start(.variable(l)))
            }
        case .noLeader:
            // A majority down, the leader last: no survivor can be elected or still claim.
            let k = d.m.voters - ExploreModel.majority(d.m.voters) + 1
            var vars: [String] = []
            for _ in 0..<(k - 1) {
                let v = variable("k")
                vars.append(v)
                try d.add(.kill(ExploreBound(.follower, as: v)))
            }
            let v = variable("k")
            vars.append(v)
            try d.add(.kill(ExploreBound(.leader, as: v)))
            try d.add(.awaitNoLeader(among: d.m.declared, forMs: 1000))
            for v in vars.reversed() { try d.add(.start(.variable(v))) }
            try d.add(.awaitLeader(withinMs: 30_000))
        case .loss:
            let delay: ClosedRange<Int>? = pick([nil, 1...10, 1...30])
            try d.add(.loss(percent: pick([5, 10, 20, 30]), delayMs: delay))
            try d.add(.write(int(10...40)))
            try d.add(.heal)
        case .partitionMinority:
            try d.add(.partition([ExploreBound(.follower, as: variable("f")), ExploreBound(.follower, as: variable("f"))]))
            try writesWhileImpaired(&d, compact: chance(0.4))
            try d.add(.heal)
        case .snapshot:
            try d.add(.snapshot(chance(0.5) ? .leader : .follower))
        case .converge:
            try d.add(.awaitConverged(withinMs: 60_000))
        case .sleep:
            try d.add(.sleep(ms: pick([200, 500, 1000, 2000])))
        case .restore:
            if d.m.cutActive {
                try d.add(.heal)
            } else {
                let i = d.m.slots.indices.first { d.m.slots[$0].impaired && d.m.slots[$0].active }
                guard let i else { throw ExploreInvalid("nothing to restore") }
                let s = d.m.slots[i]
                if s.down {
                    guard !s.wiped else { throw ExploreInvalid("wiped") }
                    try d.add(.start(s.ref))
                    try maybeCutTransfer(&d, s.ref, p: 0.5)
                } else if s.paused {
                    try d.add(.resume(s.ref))
                }
            }
        }
    }
}
