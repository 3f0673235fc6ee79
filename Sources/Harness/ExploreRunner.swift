import Foundation

// `harness explore`, part 5 of 5: the loop. Scenario i of seed S is generated, written into
// its run directory as `<name>.scenario`, run and checked; its coverage is read from the
// run's files; a failure is shrunk to `minimal.scenario` beside it. One line a scenario, a
// summary at the end.

public struct ExploreOptions: Sendable {
    public var seed: UInt64
    /// Scenarios to run; nil with `forMs` (or neither: 10).
    public var count: Int?
    /// No new scenario starts after this long.
    public var forMs: Int?
    public var runs: String
    public var shrinkBudgetMs: Int
    public var shrinkTries: Int
    /// Stop after this many failures (each shrunk first).
    public var stopAfterFailures: Int?
    /// Keep the nodes' data of passing runs (by default only their .scenario, harness.log,
    /// history.jsonl and report.json stay).
    public var keepPassing: Bool
    /// A line per step, as `harness run` prints.
    public var verbose: Bool
    /// Print the scenarios, run nothing.
    public var dryRun = false
    /// In the simulator: deterministic, so a variant is run once while shrinking, and only a
    /// failure keeps its run directory; the minimal scenario is then run against processes.
    public var sim = false
    /// No generated `value-size` above this (nil: the generator's full range, up to 64 KiB).
    public var maxValueSize: Int?
    /// Scenarios run at once (the simulator only: in processes the nodes need the cores).
    public var jobs = 1

    public init(
        seed: UInt64, count: Int?, forMs: Int?, runs: String, shrinkBudgetMs: Int, shrinkTries: Int, stopAfterFailures: Int?,
        keepPassing: Bool, verbose: Bool
    ) {
        self.seed = seed
        self.count = count
        self.forMs = forMs
        self.runs = runs
        self.shrinkBudgetMs = shrinkBudgetMs
        self.shrinkTries = shrinkTries
        self.stopAfterFailures = stopAfterFailures
        self.keepPassing = keepPassing
        self.verbose = verbose
    }
}

/// What an exploration found.
public struct ExploreSummary: Sendable {
    public struct Failure: Sendable {
        public var scenario: String
        public var kind: String
        public var directory: String
        public var minimal: String?
        public var minimalSteps: Int?
        /// The minimal scenario's verdict against processes (explore --sim).
        public var confirmed: String?
    }

    public var scenarios = 0
    public var failures: [Failure] = []
    public var coverage: [ExploreTarget: Int] = [:]
    public var runMs = 0
    public var shrinkMs = 0
    public var totalMs = 0
}

public struct ExploreRunner: Sendable {
    public var options: ExploreOptions
    public var runner: ScenarioRunner
    public var say: @Sendable (String) -> Void
    /// With `sim`: the process world's runner, which runs each minimal scenario to confirm.
    public var confirm: ScenarioRunner?

    public init(options: ExploreOptions, runner: ScenarioRunner, say: @escaping @Sendable (String) -> Void) {
        self.options = options
        self.runner = runner
        self.say = say
    }

    static func seconds(_ ms: Int) -> String { String(format: "%.1fs", Double(ms) / 1000) }

    static func minutes(_ ms: Int) -> String {
        let s = ms / 1000
        return s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
    }

    /// Runs the exploration; the summary is printed at the end and returned.
    public func run() async -> ExploreSummary {
        let began = ContinuousClock.now
        func elapsed() -> Int { began.duration(to: .now).milliseconds }
        var summary = ExploreSummary()
        let limit = options.count ?? (options.forMs == nil ? 10 : Int.max)
        say(
            "explore: seed \(options.seed), "
                + (options.count.map { "\($0) scenarios" } ?? options.forMs.map { "for \(Self.minutes($0))" } ?? "10 scenarios")
                + (options.maxValueSize.map { ", values up to \(size($0))" } ?? "")
                + (options.sim ? ", in the simulator" + (options.jobs > 1 && !options.verbose ? ", \(options.jobs) at a time" : "") : "")
                + ", runs in \(options.runs)/, shrink budget \(Self.minutes(options.shrinkBudgetMs)) a failure")
        let scratch = options.sim && !options.dryRun ? Self.memoryScratch() : nil
        if let scratch { say("explore: run directories written in \(scratch)/ (memory); failures moved to \(options.runs)/") }
        defer { if let scratch { try? FileManager.default.removeItem(atPath: scratch) } }
        if options.dryRun {
            var index = 0
            while index < limit {
                if let forMs = options.forMs, elapsed() >= forMs { break }
                let g = ExploreGenerator.scenario(seed: options.seed, index: index, maxValueSize: options.maxValueSize)
                index += 1
                let path = runDirectory(of: g) + "/" + g.name + ".scenario"
                do {
                    _ = try ScenarioParser.parse(g.text, file: path)
                } catch {
                    say(pad(g.name, 18) + "GENERATOR ERROR (a bug of explore, not of the system): \(error)")
                    summary.failures.append(.init(scenario: g.name, kind: "generator-error", directory: path))
                    continue
                }
                say("# ---- \(path) (run seed \(g.runSeed))")
                say(g.text)
                summary.scenarios += 1
            }
            return summary
        }
        // Scenarios run `jobs` at a time (in the simulator each run is a thread of its own and
        // shares nothing with another), and are recorded, shrunk and printed in their order:
        // the output is the same with any number of jobs, but for the times.
        let jobs = options.verbose ? 1 : max(1, options.jobs)
        let scratchDir = scratch
        await withTaskGroup(of: (Int, Ran).self) { group in
            var next = 0
            var inFlight = 0
            var ready: [Int: Ran] = [:]
            var expected = 0
            var stopped = false
            func mayStart() -> Bool {
                guard !stopped, next < limit else { return false }
                if let forMs = options.forMs, elapsed() >= forMs { return false }
                return true
            }
            func start() {
                let index = next
                next += 1
                inFlight += 1
                group.addTask { (index, await self.runOne(index: index, scratch: scratchDir)) }
            }
            while inFlight < jobs && mayStart() { start() }
            while let (index, ran) = await group.next() {
                inFlight -= 1
                ready[index] = ran
                while let ran = ready.removeValue(forKey: expected) {
                    expected += 1
                    if stopped {
                        // Run beside the failure that stopped the exploration: not counted.
                        if ran.runDirectory != ran.directory { try? FileManager.default.removeItem(atPath: ran.runDirectory) }
                        continue
                    }
                    stopped = await record(ran, into: &summary)
                }
                while inFlight < jobs && mayStart() { start() }
            }
        }
        summary.totalMs = elapsed()
        printSummary(summary)
        return summary
    }

    /// One scenario, run and checked (or refused by the parser), not yet recorded.
    struct Ran: Sendable {
        var scenario: ExploreScenario
        /// Its run directory under `runs/`, and where it was written (a scratch directory in
        /// memory, or the same).
        var directory: String
        var runDirectory: String
        var generatorError: String?
        var outcome: RunOutcome?
        var ms = 0
        var reached: [ExploreTarget] = []
    }

    /// `RUNS/explore-S-i-<run seed>` (`-sim` in the simulator).
    func runDirectory(of g: ExploreScenario) -> String {
        options.runs + "/" + g.name + "-\(g.runSeed)" + (options.sim ? "-sim" : "")
    }

    /// Generates scenario `index`, runs it and measures its coverage; nothing is said.
    func runOne(index: Int, scratch: String?) async -> Ran {
        let g = ExploreGenerator.scenario(seed: options.seed, index: index, maxValueSize: options.maxValueSize)
        let dir = runDirectory(of: g)
        let path = dir + "/" + g.name + ".scenario"
        // In the simulator a passing run's directory is removed at once: it is written in a
        // scratch directory in memory when there is one, and only a failure's is moved to
        // `runs/` (the files hold no path, so the move changes nothing in them).
        let runDir = scratch.map { $0 + "/" + FileSystemPath.name(of: dir) } ?? dir
        var ran = Ran(scenario: g, directory: dir, runDirectory: runDir)
        let scenario: Scenario
        do {
            scenario = try ScenarioParser.parse(g.text, file: path)
        } catch {
            ran.generatorError = "\(error)"
            return ran
        }
        let t0 = ContinuousClock.now
        ran.outcome = await runner.run(scenario, seed: g.runSeed, directory: runDir, scenarioText: g.text)
        ran.ms = t0.duration(to: .now).milliseconds
        ran.reached = ExploreCoverage.measure(runDirectory: runDir)
        return ran
    }

    /// Counts, prints and (on a failure) shrinks one run; true when the exploration stops.
    func record(_ ran: Ran, into summary: inout ExploreSummary) async -> Bool {
        let g = ran.scenario
        let dir = ran.directory
        let runDir = ran.runDirectory
        guard let outcome = ran.outcome else {
            // The generator's own mistake: said plainly, counted as a failure of its own
            // kind (never a check's or a step's), not run.
            say(pad(g.name, 18) + "GENERATOR ERROR (a bug of explore, not of the system): \(ran.generatorError ?? "")")
            summary.failures.append(.init(scenario: g.name, kind: "generator-error", directory: dir))
            return false
        }
        summary.runMs += ran.ms
        summary.scenarios += 1
        for t in ran.reached { summary.coverage[t, default: 0] += 1 }
        let kinds = ExploreFailure.kinds(outcome)
        let covers = ran.reached.isEmpty ? "" : "  [" + ran.reached.map(\.rawValue).joined(separator: ", ") + "]"
        guard let kind = ExploreFailure.primary(kinds) else {
            say(pad(g.name, 18) + "pass  " + lpad(Self.seconds(ran.ms), 7) + "  " + pad(g.profile, 8) + covers)
            if runDir != dir {
                if options.keepPassing { Self.move(runDir, to: dir) } else { try? FileManager.default.removeItem(atPath: runDir) }
            } else if !options.keepPassing {
                try? FileManager.default.removeItem(atPath: options.sim ? dir : dir + "/nodes")
            }
            return false
        }
        if runDir != dir { Self.move(runDir, to: dir) }
        let why: String
        if kind.hasPrefix("step:"), let f = outcome.stepFailure {
            why = "\(kind.dropFirst(5)) (line \(f.line): \(f.message.prefix(160)))"
        } else {
            let evidence = outcome.report.checks.first { "check:" + $0.name == kind }?.evidence.first ?? ""
            why = "\(kind.dropFirst(6)) (\(evidence.prefix(160)))"
        }
        say(pad(g.name, 18) + "FAIL  " + lpad(Self.seconds(ran.ms), 7) + "  " + pad(g.profile, 8) + why + covers + "  -> " + dir)
        var failure = ExploreSummary.Failure(scenario: g.name, kind: kind, directory: dir)
        if options.shrinkBudgetMs > 0 {
            let t1 = ContinuousClock.now
            let (minimal, steps, shrunkKind) = await shrink(g, kind: kind, directory: dir)
            failure.minimal = minimal
            failure.minimalSteps = steps
            if let confirm { failure.confirmed = await self.confirm(minimal, with: confirm, kind: shrunkKind) }
            summary.shrinkMs += t1.duration(to: .now).milliseconds
        }
        summary.failures.append(failure)
        if let stop = options.stopAfterFailures, summary.failures.count >= stop {
            say("explore: stopping after \(summary.failures.count) failure(s) (--stop-after-failures \(stop))")
            return true
        }
        return false
    }

    /// A fresh directory on /dev/shm (tmpfs) when it has room (4 GiB free: a scenario of the
    /// big profile writes some hundred MiB), else nil. Creating and removing thousands of
    /// small files is most of a simulated scenario's cost on a disk file system.
    static func memoryScratch() -> String? {
        var fs = statvfs()
        guard statvfs("/dev/shm", &fs) == 0, UInt64(fs.f_bavail) * UInt64(fs.f_frsize) >= 4 << 30 else { return nil }
        // The process id and a random tag: two explorations in one process (tests) never share it.
        let dir = "/dev/shm/raft-explore-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        try? FileManager.default.removeItem(atPath: dir)
        guard (try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil else { return nil }
        return dir
    }

    /// Moves a run directory from the scratch directory to `runs/` (another file system).
    static func move(_ from: String, to: String) {
        let fm = FileManager.default
        try? fm.removeItem(atPath: to)
        try? fm.createDirectory(atPath: FileSystemPath.directory(of: to), withIntermediateDirectories: true)
        if (try? fm.copyItem(atPath: from, toPath: to)) != nil { try? fm.removeItem(atPath: from) }
    }

    /// Runs a minimal scenario found in the simulator against processes, with the seed that
    /// failed; answers both verdicts in a line (and says it).
    func confirm(_ path: String, with processes: ScenarioRunner, kind: String) async -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let scenario = try? ScenarioParser.parse(text, file: path) else {
            return "not confirmed: \(path) does not read back"
        }
        let seed = text.split(separator: "\n").first { $0.hasPrefix("# replay:") }.flatMap { $0.split(separator: " ").last.flatMap { UInt64($0) } } ?? 1
        let dir = FileSystemPath.directory(of: path) + "/processes-\(seed)"
        let outcome = await processes.run(scenario, seed: seed, directory: dir, scenarioText: text)
        let kinds = ExploreFailure.kinds(outcome)
        let verdict: String
        if kinds.isEmpty {
            verdict = "simulator: fails \(kind); processes: pass (a divergence between the worlds: see \(dir))"
        } else {
            verdict = "simulator: fails \(kind); processes: fail \(ExploreFailure.primary(kinds) ?? kinds[0]) (\(dir))"
        }
        say("  confirm " + verdict)
        return verdict
    }

    /// Shrinks a failure; writes `minimal.scenario` in its run directory. Answers its path,
    /// its steps before the liveness phase and the kind it fails with.
    func shrink(_ g: ExploreScenario, kind: String, directory: String) async -> (String, Int, String) {
        let shrinkDir = directory + "/shrink"
        try? FileManager.default.removeItem(atPath: shrinkDir)
        try? FileManager.default.createDirectory(atPath: shrinkDir, withIntermediateDirectories: true)
        let expect = g.liveness.contains { if case .expectInstalled = $0 { return true } else { return false } }
        let say = self.say
        var shrinker = ExploreShrinker(
            header: [], kind: kind, expectSnapshots: expect, tries: options.sim ? 1 : options.shrinkTries, budgetMs: options.shrinkBudgetMs,
            progress: { say("    shrink " + $0) })
        shrinker.keepsAnyStepFailure = options.sim
        let runner = self.runner
        let keep = options.keepPassing
        let sim = options.sim
        let name = g.name
        let runSeed = g.runSeed
        say("  shrinking \(g.name) (\(kind), \(ExploreShrinker.count(g.body)) steps before the liveness phase; budget \(Self.minutes(options.shrinkBudgetMs)))")
        let result = await shrinker.shrink(g.body, seed: g.runSeed) { text, variant, tryIndex in
            let vname = name + String(format: "-v%03d", variant)
            let seed = runSeed &+ UInt64(tryIndex - 1)
            let dir = shrinkDir + "/" + vname + "-t\(tryIndex)" + (options.sim ? "-sim" : "")
            let scenario: Scenario
            do {
                scenario = try ScenarioParser.parse(text, file: dir + "/" + vname + ".scenario")
            } catch {
                say("    shrink: variant \(variant) does not parse (generator error): \(error)")
                return ([], seed, nil)
            }
            let outcome = await runner.run(scenario, seed: seed, directory: dir, scenarioText: text)
            let kinds = ExploreFailure.kinds(outcome)
            if kinds.isEmpty && !keep { try? FileManager.default.removeItem(atPath: sim ? dir : dir + "/nodes") }
            return (kinds, seed, dir)
        }
        let steps = ExploreShrinker.count(result.body)
        let header = [
            "# minimal scenario of \(g.name) (explore seed \(g.seed), scenario \(g.index), profile \(g.profile)): fails \(result.kind)"
                + (result.kind == kind ? "" : " (found failing \(kind))"),
            "# shrunk from \(ExploreShrinker.count(g.body)) to \(steps) steps before the liveness phase: \(result.variantsRun) variants run"
                + " (\(result.runs) runs), \(result.kept) kept, \(result.refused) refused by the validity model without a run",
            (options.sim
                ? "# in the simulator a variant runs once (a seed replays exactly); this one failed on its run with seed \(result.failedSeed)"
                : "# a variant counts as failing when it fails in 1 of \(options.shrinkTries) tries; this one failed on try \(result.failedOnTry)"
                    + " of its last run, seed \(result.failedSeed)")
                + (result.failedRun.map { " (\($0))" } ?? " (the original run)"),
            "# shrink budget \(Self.minutes(options.shrinkBudgetMs)), used \(Self.minutes(result.usedMs))"
                + (result.budgetExhausted ? " (exhausted: it may shrink further)" : ""),
            "# replay: harness run \(options.sim ? "--sim " : "")minimal.scenario --seed \(result.failedSeed)",
        ]
        let text = ExploreScenario.render(header: header, body: result.body, liveness: result.liveness)
        let path = directory + "/minimal.scenario"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        } catch {
            say("  cannot write \(path): \(error)")
        }
        say(
            "  shrunk \(g.name): \(ExploreShrinker.count(g.body)) -> \(steps) steps in \(result.variantsRun) variants (\(result.runs) runs), "
                + "\(Self.minutes(result.usedMs)) of \(Self.minutes(options.shrinkBudgetMs))\(result.budgetExhausted ? " (budget exhausted)" : "") -> \(path)")
        return (path, steps, result.kind)
    }

    func printSummary(_ s: ExploreSummary) {
        say("")
        let avg = s.scenarios > 0 ? s.runMs / s.scenarios : 0
        say(
            "explore: \(s.scenarios) scenarios, \(s.failures.count) failed, \(Self.seconds(s.totalMs)) in all "
                + "(\(Self.seconds(avg)) a scenario on average, \(Self.seconds(s.shrinkMs)) shrinking\(confirm == nil ? "" : " and confirming")); seed \(options.seed)")
        let explored = s.totalMs - s.shrinkMs
        if s.scenarios > 0 && explored > 0 {
            // Every cost of a scenario counts (generating, running, checking, coverage, removal
            // of its directory); shrinking and confirming do not.
            say("rate: \(s.scenarios * 60_000 / explored) scenarios a minute" + (options.maxValueSize.map { ", values up to \(size($0))" } ?? ""))
        }
        if !s.failures.isEmpty {
            say("failures by check:")
            var kinds: [String] = []
            for f in s.failures where !kinds.contains(f.kind) { kinds.append(f.kind) }
            for k in kinds {
                let fs = s.failures.filter { $0.kind == k }
                say("  " + pad(k, 34) + lpad("\(fs.count)", 3) + "  " + fs.map(\.scenario).joined(separator: ", "))
                for f in fs {
                    if let m = f.minimal { say("      \(f.scenario): \(m) (\(f.minimalSteps ?? 0) steps before the liveness phase)") }
                    if let c = f.confirmed { say("        \(c)") }
                }
            }
        }
        say("coverage (share of the scenarios whose files show the state):")
        for t in ExploreTarget.allCases {
            let n = s.coverage[t] ?? 0
            let share = s.scenarios > 0 ? Double(n) * 100 / Double(s.scenarios) : 0
            say("  " + pad(t.rawValue, 24) + lpad(String(format: "%.0f%%", share), 5) + "  (\(n)/\(s.scenarios))  " + t.meaning)
        }
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }

enum FileSystemPath {
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
