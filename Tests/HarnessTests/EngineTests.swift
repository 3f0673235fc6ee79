import RaftNodeWire
import Foundation
import Harness
import Testing

/// A cluster in memory: the first running, unpaused member alphabetically leads; puts to
/// anyone else are refused with that leader's name.
final class FakeBackend: ClusterBackend, @unchecked Sendable {
    private let lock = NSLock()
    private var members: [String] = []
    private var up: Set<String> = []
    private var stopped: Set<String> = []
    private var pausedNodes: Set<String> = []
    private var index: UInt64 = 0
    private(set) var calls: [String] = []

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    var leader: String? { locked { members.sorted().first { up.contains($0) && !pausedNodes.contains($0) } } }

    func createCluster(_ names: [String], settings: NodeSettings) async throws {
        locked {
            members = names
            up = Set(names)
            calls.append("cluster \(names.joined(separator: " "))")
        }
    }
    func start(_ name: String) async throws { locked { up.insert(name); calls.append("start \(name)") } }
    func startJoining(_ name: String, settings: NodeSettings) async throws -> String {
        locked { up.insert(name); calls.append("join \(name)") }
        return "/tmp/\(name).peer"
    }
    func stop(_ name: String) async throws { locked { up.remove(name); calls.append("stop \(name)") } }
    func kill(_ name: String) async throws { locked { up.remove(name); calls.append("kill \(name)") } }
    func pause(_ name: String) async throws { locked { _ = pausedNodes.insert(name) } }
    func resume(_ name: String) async throws { locked { _ = pausedNodes.remove(name) } }
    func wipe(_ name: String) async throws { locked { calls.append("wipe \(name)") } }
    func partition(_ groups: [[String]]?) async throws { locked { calls.append("partition \(groups.map { "\($0)" } ?? "heal")") } }
    func isolate(_ name: String) async throws { locked { calls.append("isolate \(name)") } }
    func setLoss(percent: Double, delayMs: ClosedRange<Int>?) async throws {}
    var running: [String] { locked { Array(up) } }
    var paused: Set<String> { locked { pausedNodes } }
    var known: [String] { locked { members } }

    func status(_ name: String) async -> NodeStatus? {
        let l = leader
        return locked {
            guard up.contains(name), !pausedNodes.contains(name) else { return nil }
            return NodeStatus(
                name: name, role: name == l ? "leader" : "follower", term: 1, leader: l, commitIndex: index, appliedIndex: index,
                lastIndex: index, snapshotIndex: 0, members: members, learners: [], configIndex: 0, digest: "d\(index)",
                snapshotting: false, peers: nil)
        }
    }

    /// Outcomes that the next puts get instead of the usual, in order.
    var scripted: [WriteOutcome] = []
    private(set) var puts: [(node: String, key: String, value: String)] = []

    func put(_ name: String, key: String, value: String, timeoutMs: Int) async -> WriteOutcome {
        let l = leader
        return locked {
            puts.append((name, key, value))
            if !scripted.isEmpty { return scripted.removeFirst() }
            guard name == l else { return .refused("not-leader", leader: l) }
            index += 1
            return .ok(index: index, term: 1)
        }
    }

    func request(_ name: String, _ op: ClientOp, timeoutMs: Int) async throws(RequestFailure) -> ClientAnswer {
        locked {
            calls.append("request \(name) \(op.line(id: .int(1)))")
            if case let .add(n, _) = op { members.append(n) }
            index += 1
            return .done(index: index)
        }
    }

    func crash(_ name: String) async throws -> [String] { locked { up.remove(name); calls.append("crash \(name)") }; return [] }
    let clock: any RunClock = WallClock()

    func events(_ name: String) -> [String] { [] }
    func shutdown() async {}
}

final class MemoryRecorder: RunRecorder, @unchecked Sendable {
    var lines: [String] = []
    var historyLines: [[(String, String)]] = []
    func log(_ line: String) { lines.append(line) }
    func history(_ fields: [(String, String)]) { historyLines.append(fields) }
}

@Suite("Scenario engine")
struct EngineTests {
    /// The fake answers at once, so a step's timeout is only a safety net; but a retry
    /// sleeps, and while the process tests of other suites block the cooperative threads (two
    /// on a 2-core box) that sleep can end seconds late: the default 10 s is not enough.
    static let generous = "set timeout 5m\n"

    func run(_ text: String) async throws -> (Engine.StepFailure?, FakeBackend, MemoryRecorder) {
        let scenario = try ScenarioParser.parse(text, file: "t.scenario")
        let backend = FakeBackend()
        let recorder = MemoryRecorder()
        let engine = Engine(backend: backend, recorder: recorder, seed: 1)
        return (await engine.run(scenario), backend, recorder)
    }

    @Test("Writes follow redirects to the leader and each is recorded invoked, then ok with index and term")
    func writesAreRecorded() async throws {
        let (failure, _, recorder) = try await run("cluster n1 n2 n3\nawait leader within 1m\nwrite 5")
        #expect(failure == nil)
        let types = recorder.historyLines.map { $0.first { $0.0 == "type" }!.1 }
        #expect(types == ["invoke", "ok", "invoke", "ok", "invoke", "ok", "invoke", "ok", "invoke", "ok"])
        #expect(recorder.historyLines[1].contains { $0 == ("index", "1") })
    }

    @Test("A write answered leadership-lost is recorded unknown and sent again, same key and value, as a new operation")
    func unknownWritesAreSentAgain() async throws {
        let scenario = try ScenarioParser.parse(Self.generous + "cluster n1 n2 n3\nwrite 1", file: "t.scenario")
        let backend = FakeBackend()
        backend.scripted = [.unknown("leadership-lost", leader: "n1"), .unknown("timeout", leader: nil)]
        let recorder = MemoryRecorder()
        let failure = await Engine(backend: backend, recorder: recorder, seed: 1).run(scenario)
        #expect(failure == nil)
        let lines = recorder.historyLines.map { Dictionary($0, uniquingKeysWith: { a, _ in a }) }
        #expect(lines.map { $0["type"]! } == ["invoke", "unknown", "invoke", "unknown", "invoke", "ok"])
        // The value is on each invoke (the same throughout); the lines that end them name none.
        #expect(Set(lines.filter { $0["type"] == "invoke" }.map { $0["value"] }).count == 1, "one value throughout")
        #expect(lines.filter { $0["type"] == "invoke" }.allSatisfy { $0["value"] != nil })
        #expect(lines.filter { $0["type"] != "invoke" }.allSatisfy { $0["value"] == nil })
        #expect(Set(backend.puts.map(\.value)).count == 1 && backend.puts.count == 3)
    }

    @Test("A write refused (not proposed) is retried at the leader named, within one operation")
    func refusedWritesAreOneOperation() async throws {
        let scenario = try ScenarioParser.parse(Self.generous + "cluster n1 n2 n3\nwrite 1", file: "t.scenario")
        let backend = FakeBackend()
        backend.scripted = [.refused("busy", leader: nil), .refused("not-leader", leader: "n1")]
        let recorder = MemoryRecorder()
        let failure = await Engine(backend: backend, recorder: recorder, seed: 1).run(scenario)
        #expect(failure == nil)
        #expect(recorder.historyLines.map { $0.first { $0.0 == "type" }!.1 } == ["invoke", "ok"])
    }

    @Test("A selector binds a variable that later steps use; repeat runs its body anew each pass")
    func bindingsAndRepeat() async throws {
        let (failure, backend, _) = try await run("""
            cluster n1 n2 n3
            kill leader as old
            start $old
            repeat 2
              stop leader as l
              start $l
            end
            """)
        #expect(failure == nil)
        #expect(backend.calls == ["cluster n1 n2 n3", "kill n1", "start n1", "stop n1", "start n1", "stop n1", "start n1"])
    }

    @Test("The first failing step stops the scenario and says why")
    func firstFailureStops() async throws {
        let (failure, backend, recorder) = try await run("cluster n1 n2 n3\nexpect leader n2\nkill n3")
        let f = try #require(failure)
        #expect(f.line == 2)
        #expect(f.message.contains("the leader is n1, not n2"))
        #expect(!backend.calls.contains("kill n3"))
        #expect(recorder.lines.contains { $0.contains("FAILED") })
    }

    @Test("await converged logs the converged line the checker reads")
    func convergedLine() async throws {
        let (failure, _, recorder) = try await run("cluster n1 n2 n3\nwrite 2\nawait converged within 1m")
        #expect(failure == nil)
        #expect(recorder.lines.contains { $0.hasPrefix("converged applied=2 digest=d2 nodes=n1,n2,n3") })
    }

    @Test("add starts the node empty and asks the leader to add it")
    func addAsksTheLeader() async throws {
        let (failure, backend, _) = try await run("cluster n1 n2 n3\nadd n4")
        #expect(failure == nil)
        #expect(backend.calls.contains("join n4"))
        #expect(backend.calls.contains { $0.hasPrefix("request n1 ") && $0.contains(#""node":"n4""#) })
    }
}
