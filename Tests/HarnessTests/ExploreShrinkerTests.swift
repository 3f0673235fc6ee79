import Foundation
import Harness
import Testing

/// Counts and a fake clock shared with the shrinker's @Sendable closures.
final class ShrinkLog: @unchecked Sendable {
    private let lock = NSLock()
    private var _texts: [String] = []
    private var _clock = 0
    var texts: [String] { lock.withLock { _texts } }
    var clock: Int { lock.withLock { _clock } }
    func record(_ t: String, advance: Int) { lock.withLock { _texts.append(t); _clock += advance } }
}

@Suite("explore: the shrinker")
struct ExploreShrinkerTests {
    let f = ExploreBound(.follower, as: "d1")
    var body: [ExploreStep] {
        [
            .set("timeout", "20s"), .set("snapshot-threshold", "30"), .set("snapshot-trailing", "5"), .cluster(["n1", "n2", "n3", "n4", "n5"]),
            .awaitLeader(withinMs: 20_000), .write(20), .kill(f), .write(80), .start(.variable("d1")), .isolate(.init(.leader, as: "l2")),
            .add(.named("n6")), .heal, .write(30), .loss(percent: 20, delayMs: 1...10), .write(12), .heal, .pause(.init(.follower, as: "p3")),
            .write(10), .resume(.variable("p3")), .repeat(3, [.stop(.init(.follower, as: "s4")), .start(.variable("s4"))]), .write(40),
        ]
    }

    /// The fake system's bug: a follower killed, then at least 40 writes before the liveness phase.
    static func buggy(_ text: String) -> Bool {
        let before = text.components(separatedBy: ExploreScenario.livenessMarker)[0].split(separator: "\n").map(String.init)
        guard let k = before.firstIndex(of: "kill follower as d1") else { return false }
        return before[k...].contains { $0.hasPrefix("write ") && (Int($0.dropFirst(6)) ?? 0) >= 40 }
    }

    func valid(_ text: String) -> Bool {
        guard let s = try? ScenarioParser.parse(text, file: "v.scenario") else { return false }
        var shadow = ShadowCluster()
        shadow.run(s.steps)
        return shadow.problems.isEmpty && shadow.impaired == 0
    }

    @Test("A failure shrinks to the steps it needs; every variant run is valid")
    func shrinksToWhatItNeeds() async throws {
        let log = ShrinkLog()
        let shrinker = ExploreShrinker(header: [], kind: "step:await converged", expectSnapshots: false, budgetMs: 1_000_000, elapsedMs: { log.clock })
        let result = await shrinker.shrink(body, seed: 7) { text, _, _ in
            log.record(text, advance: 1)
            return (Self.buggy(text) ? ["step:await converged"] : [], 7, nil)
        }
        #expect(log.texts.allSatisfy(valid), "\(log.texts.filter { !valid($0) }.first ?? "")")
        let text = ExploreScenario.render(header: [], body: result.body, liveness: result.liveness)
        #expect(Self.buggy(text))
        #expect(ExploreShrinker.count(result.body) <= 4, "\(text)")
        #expect(result.body.contains(.kill(f)))
        #expect(result.body.contains(.write(40)))
        #expect(result.liveness.contains(.start(.variable("d1"))))
        #expect(!result.budgetExhausted)
        #expect(result.kept >= 2)
        #expect(result.refused > 0)
    }

    @Test("A variant counts as failing when one of its tries fails; a pass takes every try")
    func kOfM() async {
        let log = ShrinkLog()
        let shrinker = ExploreShrinker(header: [], kind: "check:log-matching", expectSnapshots: false, tries: 3, budgetMs: 1_000_000, elapsedMs: { log.clock })
        let result = await shrinker.shrink(body, seed: 7) { text, _, tryIndex in
            log.record(text, advance: 1)
            return (Self.buggy(text) && tryIndex == 3 ? ["check:log-matching"] : [], 7 + UInt64(tryIndex), nil)
        }
        #expect(ExploreShrinker.count(result.body) <= 4)
        #expect(result.failedOnTry == 3)
        #expect(result.failedSeed == 10)
        #expect(result.runs == 3 * result.variantsRun)
    }

    @Test("In the simulator a failed step keeps any failed step or check, and the minimal scenario says which; a check keeps only itself")
    func anyStepFailureInTheSimulator() async {
        // The fake bug fails `await snapshotting` behind a partition, `await converged` without one.
        @Sendable func answer(_ text: String) -> [String] {
            guard Self.buggy(text) else { return [] }
            return text.contains("isolate") ? ["step:await snapshotting"] : ["step:await converged"]
        }
        var sim = ExploreShrinker(header: [], kind: "step:await snapshotting", expectSnapshots: false, tries: 1, budgetMs: 1_000_000)
        sim.keepsAnyStepFailure = true
        let r = await sim.shrink(body, seed: 3) { text, _, _ in (answer(text), 3, nil) }
        #expect(r.kind == "step:await converged")
        #expect(ExploreShrinker.count(r.body) <= 4, "\(r.body)")
        // Against processes (by default) the verb must stay: the partition is kept.
        let processes = ExploreShrinker(header: [], kind: "step:await snapshotting", expectSnapshots: false, tries: 1, budgetMs: 1_000_000)
        let p = await processes.shrink(body, seed: 3) { text, _, _ in (answer(text), 3, nil) }
        #expect(p.kind == "step:await snapshotting")
        #expect(p.body.contains { if case .isolate = $0 { true } else { false } })
        // A broken check is never traded for a failed step.
        var check = ExploreShrinker(header: [], kind: "check:log-matching", expectSnapshots: false, tries: 1, budgetMs: 1_000_000)
        check.keepsAnyStepFailure = true
        let c = await check.shrink(body, seed: 3) { text, _, _ in (Self.buggy(text) ? ["step:await converged"] : [], 3, nil) }
        #expect(c.body == body && c.kind == "check:log-matching")
    }

    @Test("Another kind of failure does not count; the budget ends the shrink")
    func kindAndBudget() async {
        let log = ShrinkLog()
        let other = ExploreShrinker(header: [], kind: "step:await converged", expectSnapshots: false, tries: 2, budgetMs: 1_000_000, elapsedMs: { log.clock })
        let r1 = await other.shrink(body, seed: 1) { text, _, _ in
            log.record(text, advance: 1)
            return (["check:committed-entries", "step:write"], 1, nil)
        }
        #expect(r1.body == body)
        #expect(r1.kept == 0)

        let slow = ShrinkLog()
        let budgeted = ExploreShrinker(header: [], kind: "step:await converged", expectSnapshots: false, budgetMs: 50_000, elapsedMs: { slow.clock })
        let r2 = await budgeted.shrink(body, seed: 1) { text, _, _ in
            slow.record(text, advance: 10_000)
            return ([], 1, nil)
        }
        #expect(r2.runs <= 5)
        #expect(r2.budgetExhausted)
        #expect(r2.body == body)
    }

    @Test("Failure kinds: checks first, then the failed step's verb")
    func kinds() {
        #expect(ExploreFailure.verb("await converged within 1m") == "await converged")
        #expect(ExploreFailure.verb("expect $f installed-snapshot") == "expect installed-snapshot")
        #expect(ExploreFailure.verb("expect leader $l") == "expect leader")
        #expect(ExploreFailure.verb("network loss 10%") == "network loss")
        #expect(ExploreFailure.verb("write 30") == "write")
        #expect(ExploreFailure.primary(["step:write", "check:log-matching"]) == "check:log-matching")
        #expect(ExploreFailure.primary(["step:write"]) == "step:write")
        #expect(ExploreFailure.primary([]) == nil)
        let text = "# h\ncluster n1\nwrite 3\n# liveness\nheal\nwrite 3\n"
        #expect(ExploreScenario.stepsBeforeLiveness(text) == 2)
    }
}
