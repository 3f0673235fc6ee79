// `harness explore`, part 3 of 5: shrinking a failing scenario. Variants of the body (the
// steps before the liveness phase) with fewer steps and smaller counts are tried, each
// with a liveness phase made anew from the model; a variant the model refuses is never run.
// Processes are not deterministic, so a variant counts as failing when one of up to `tries`
// runs fails the same way (stopping at the first that does).

/// How a run failed: `check:NAME` for a check of the checker, `step:VERB` for a step.
public enum ExploreFailure {
    /// Every way the run failed, checks first (in the checker's order), then the step.
    public static func kinds(_ outcome: RunOutcome) -> [String] {
        var kinds = outcome.report.checks.filter { !$0.passed && $0.name != "steps" }.map { "check:" + $0.name }
        if let f = outcome.stepFailure {
            kinds.append("step:" + verb(f.text))
        } else if outcome.report.checks.contains(where: { $0.name == "steps" && !$0.passed }) {
            kinds.append("step:?")
        }
        return kinds
    }

    /// The kind a shrink keeps: the first failed check, else the failed step's verb.
    public static func primary(_ kinds: [String]) -> String? {
        kinds.first { $0.hasPrefix("check:") } ?? kinds.first
    }

    /// A step's verb as a failure kind: `await converged`, `expect installed-snapshot`,
    /// `network loss`, `write`...
    public static func verb(_ text: String) -> String {
        let w = text.split(separator: " ").map(String.init)
        guard let first = w.first else { return "?" }
        switch first {
        case "await", "network": return w.count > 1 ? "\(first) \(w[1])" : first
        case "expect":
            if w.count > 1 && w[1] == "leader" && w.count == 3 { return "expect leader" }
            return "expect " + (w.last ?? "")
        default: return first
        }
    }
}

/// What a shrink ended with.
public struct ShrinkResult: Sendable {
    public var body: [ExploreStep]
    public var liveness: [ExploreStep]
    /// Variants run, and runs made (each variant up to `tries` runs).
    public var variantsRun: Int
    public var runs: Int
    /// Variants the model refused (never run).
    public var refused: Int
    /// Variants kept (each failing as the original did).
    public var kept: Int
    /// The try on which the minimal variant last failed (1 when it is the original).
    public var failedOnTry: Int
    /// The run seed of that failing try.
    public var failedSeed: UInt64
    public var usedMs: Int
    public var budgetExhausted: Bool
    /// The run directory of that failing try (nil when the original is minimal).
    public var failedRun: String?
    /// The kind the minimal scenario fails with: the original's, or (with
    /// `keepsAnyStepFailure`) the step or check it came to fail with as it shrank.
    public var kind: String
}

/// Delta debugging over a scenario body, with an injectable runner: `attempt` runs one try
/// of a variant (its text) and answers the kinds it failed with (empty when it passed).
public struct ExploreShrinker: Sendable {
    public typealias Attempt = @Sendable (_ text: String, _ variant: Int, _ tryIndex: Int) async -> (kinds: [String], seed: UInt64, run: String?)

    public var header: [String]
    public var kind: String
    /// A failed step counts for any failed step (or broken check), not only for one of the
    /// same verb: the simulator's choice (deterministic, and its minimal scenario is then run
    /// against processes). The planted stuck peer connection failed first at `await
    /// snapshotting` behind a partition; it needs only a stopped follower, writes and its
    /// start, which fail at `await converged`. A broken check keeps that check, always.
    public var keepsAnyStepFailure = false
    public var expectSnapshots: Bool
    public var tries: Int
    public var budgetMs: Int
    /// Milliseconds since the shrink began (a real clock by default; tests pass a fake one).
    public var elapsedMs: @Sendable () -> Int
    public var progress: (@Sendable (String) -> Void)?

    public init(
        header: [String], kind: String, expectSnapshots: Bool, tries: Int = 3, budgetMs: Int,
        elapsedMs: (@Sendable () -> Int)? = nil, progress: (@Sendable (String) -> Void)? = nil
    ) {
        self.header = header
        self.kind = kind
        self.expectSnapshots = expectSnapshots
        self.tries = max(1, tries)
        self.budgetMs = budgetMs
        if let elapsedMs {
            self.elapsedMs = elapsedMs
        } else {
            let start = ContinuousClock.now
            self.elapsedMs = { start.duration(to: .now).milliseconds }
        }
        self.progress = progress
    }

    /// The liveness phase of `body`, or nil when the model refuses the body.
    public func validate(_ body: [ExploreStep]) -> [ExploreStep]? {
        var m = ExploreModel()
        do {
            try m.apply(body)
            return try m.liveness(expectSnapshots: expectSnapshots)
        } catch {
            return nil
        }
    }

    public func text(_ body: [ExploreStep], _ liveness: [ExploreStep]) -> String {
        ExploreScenario.render(header: header, body: body, liveness: liveness)
    }

    /// Shrinks `body` (which failed with `kind` on seed `seed`).
    public func shrink(_ body: [ExploreStep], seed: UInt64, attempt: Attempt) async -> ShrinkResult {
        var best = body
        var result = ShrinkResult(
            body: body, liveness: validate(body) ?? [], variantsRun: 0, runs: 0, refused: 0, kept: 0, failedOnTry: 1, failedSeed: seed,
            usedMs: 0, budgetExhausted: false, failedRun: nil, kind: kind)
        var seen: Set<String> = [text(body, result.liveness)]

        /// Runs a variant; true when it fails as the original did.
        func fails(_ candidate: [ExploreStep]) async -> Bool {
            guard elapsedMs() < budgetMs else {
                result.budgetExhausted = true
                return false
            }
            guard let liveness = validate(candidate) else {
                result.refused += 1
                return false
            }
            let t = text(candidate, liveness)
            guard seen.insert(t).inserted else { return false }
            result.variantsRun += 1
            let n = result.variantsRun
            for i in 1...tries {
                guard elapsedMs() < budgetMs else {
                    result.budgetExhausted = true
                    return false
                }
                result.runs += 1
                let answer = await attempt(t, n, i)
                if let kept = Self.keptKind(result.kind, answer.kinds, anyStep: keepsAnyStepFailure) {
                    result.kind = kept
                    result.kept += 1
                    result.failedOnTry = i
                    result.failedSeed = answer.seed
                    result.failedRun = answer.run
                    result.liveness = liveness
                    progress?("variant \(n): \(Self.count(candidate)) steps, fails (\(kept)) on try \(i): kept")
                    return true
                }
            }
            progress?("variant \(n): \(Self.count(candidate)) steps, passes \(tries) tries")
            return false
        }

        var changed = true
        while changed && !result.budgetExhausted {
            changed = false
            // Prefixes first: a bug often needs only what leads up to it.
            var cut = best.count / 2
            while cut >= 1 && !result.budgetExhausted {
                let candidate = Array(best.prefix(best.count - cut))
                if await fails(candidate) {
                    best = candidate
                    changed = true
                    cut = min(cut, best.count / 2)
                } else {
                    cut /= 2
                }
            }
            // Then chunks anywhere (ddmin: complements of n chunks, n doubling).
            var n = 2
            while n <= best.count && !result.budgetExhausted {
                let size = (best.count + n - 1) / n
                var removed = false
                var start = 0
                while start < best.count && !result.budgetExhausted {
                    var candidate = best
                    candidate.removeSubrange(start..<min(best.count, start + size))
                    if await fails(candidate) {
                        best = candidate
                        removed = true
                        changed = true
                        break
                    }
                    start += size
                }
                if removed {
                    n = max(2, n - 1)
                } else {
                    if size == 1 { break }
                    n = min(best.count, n * 2)
                }
            }
            // Then each step made smaller.
            var i = 0
            while i < best.count && !result.budgetExhausted {
                for smaller in Self.simpler(best[i]) {
                    var candidate = best
                    candidate.replaceSubrange(i...i, with: smaller)
                    if await fails(candidate) {
                        best = candidate
                        changed = true
                        break
                    }
                }
                i += 1
            }
        }
        result.body = best
        if result.liveness.isEmpty { result.liveness = validate(best) ?? [] }
        result.usedMs = elapsedMs()
        return result
    }

    /// The kind a variant that failed with `kinds` is kept for, shrinking a failure of `kind`;
    /// nil when it does not count.
    static func keptKind(_ kind: String, _ kinds: [String], anyStep: Bool) -> String? {
        if kinds.contains(kind) { return kind }
        guard anyStep, kind.hasPrefix("step:") else { return nil }
        return ExploreFailure.primary(kinds)
    }

    /// Steps before the liveness phase, as a file counts them.
    public static func count(_ body: [ExploreStep]) -> Int { body.reduce(0) { $0 + $1.stepCount } }

    /// Smaller forms of one step, smallest change first; each replaces the step.
    static func simpler(_ step: ExploreStep) -> [[ExploreStep]] {
        switch step {
        case let .write(n) where n > 1:
            return [[.write(n / 2)], [.write(max(1, n * 3 / 4))]].filter { $0 != [step] }
        case let .submit(n, to, b) where n > 1:
            return [[.submit(count: n / 2, to: to, batch: b)]]
        case let .repeat(n, body):
            var out: [[ExploreStep]] = [body]
            if n > 1 { out.append([.repeat(n / 2, body)]) }
            for j in body.indices where body.count > 1 {
                var inner = body
                inner.remove(at: j)
                out.append([.repeat(n, inner)])
            }
            return out
        case let .load(c, r, k) where c > 1:
            return [[.load(clients: 1, readsPercent: r, keys: k)]]
        case let .sleep(ms) where ms > 100:
            return [[.sleep(ms: ms / 2)]]
        case let .loss(p, delay):
            var out: [[ExploreStep]] = []
            if delay != nil { out.append([.loss(percent: p, delayMs: nil)]) }
            if p > 5 { out.append([.loss(percent: p / 2, delayMs: delay)]) }
            return out
        default:
            return []
        }
    }
}
