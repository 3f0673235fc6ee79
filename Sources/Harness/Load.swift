import Foundation
import Raft

/// The background clients of `load C clients [reads P%] [keys K]` (SPEC section 2): each
/// puts and gets on `k0`...`k(K-1)` (keys of their own, `load-`), one operation at a time,
/// through the leader it finds (following `leader` hints), and records every operation in
/// history.jsonl: an invoke line, then ok, fail or unknown. A get goes first to a running
/// member chosen at random, so that followers are asked too. Refusals (not proposed) are
/// retried within the operation up to the timeout; after an unknown outcome the client goes
/// on under a new client name, since its earlier operation may still take effect.
///
/// `pause` (for `await converged`) lets the operations in flight finish and starts none
/// until `resume`; `stop` ends the clients and waits for their last answers.
final class LoadClients: Sendable {
    private struct Control {
        var stopped = false
        var paused = false
        /// Operations in flight now, across the clients.
        var inFlight = 0
        var operations = 0
    }

    private let control = Locked(Control())
    private let clock: any RunClock
    private let tasks: Locked<[Task<Void, Never>]> = Locked([])

    struct Settings: Sendable {
        var clients: Int
        var readsPercent: Int
        var keys: Int
        var valueSize: Int
        var timeoutMs: Int
        var seed: UInt64
    }

    init(_ settings: Settings, backend: any ClusterBackend, recorder: any RunRecorder & Sendable) {
        clock = backend.clock
        var started: [Task<Void, Never>] = []
        let backendClock = backend.clock
        for i in 0..<settings.clients {
            started.append(Task(executorPreference: backendClock.executor) { [self] in await self.client(i, settings, backend, recorder) })
        }
        tasks.withLockedValue { $0 = started }
    }

    var operations: Int { control.withLockedValue { $0.operations } }

    func pause() async {
        control.withLockedValue { $0.paused = true }
        // The operations in flight end (each within the timeout).
        while control.withLockedValue({ $0.inFlight > 0 && !$0.stopped }) { await clock.sleep(ms: 10) }
    }

    func resume() { control.withLockedValue { $0.paused = false } }

    func stop() async {
        control.withLockedValue { $0.stopped = true }
        for t in tasks.withLockedValue({ $0 }) { await t.value }
    }

    private func client(_ i: Int, _ s: Settings, _ backend: any ClusterBackend, _ recorder: any RunRecorder & Sendable) async {
        var rng = SeededRandom(seed: s.seed &+ UInt64(i) &* 0x9e37_79b9_7f4a_7c15)
        var generation = 0
        var seq = 0
        var target: String?
        while true {
            let (stopped, paused) = control.withLockedValue { ($0.stopped, $0.paused) }
            if stopped { return }
            if paused {
                await backend.clock.sleep(ms: 20)
                continue
            }
            if target == nil { target = await Engine.currentLeader(backend, among: nil) }
            guard target != nil else {
                await backend.clock.sleep(ms: 50)
                continue
            }
            let name = generation == 0 ? "load-\(i)" : "load-\(i).\(generation)"
            let key = "load-k\(rng.next() % UInt64(max(1, s.keys)))"
            let isGet = Int(rng.next() % 100) < s.readsPercent
            seq += 1
            let value = isGet ? "" : Engine.value(stamp: "l\(i)-\(seq)-", size: s.valueSize, rng: &rng)
            control.withLockedValue {
                $0.inFlight += 1
                $0.operations += 1
            }
            let op = isGet ? "get" : "put"
            /// A history line of this operation: a put's invoke carries its value, an ok get's
            /// the value read.
            func record(_ type: String, value shown: String? = nil, _ extra: [(String, String)] = []) {
                let v = shown ?? (isGet || type != "invoke" ? nil : value)
                recorder.history([("type", type), ("op", op), ("client", name), ("key", key)] + (v.map { [("value", $0)] } ?? []) + extra)
            }
            record("invoke")
            let deadline = backend.clock.nowMs + s.timeoutMs
            // A get asks a member chosen at random first, and follows its redirect: a
            // follower or a deposed leader that answered from its own state would be seen.
            var first: String?
            if isGet {
                let members = backend.running.filter { !backend.paused.contains($0) }
                if !members.isEmpty { first = members[Int(rng.next() % UInt64(members.count))] }
            }
            var ended = false
            while !ended {
                let asked = first ?? target
                first = nil
                guard let node = asked, backend.clock.nowMs < deadline else {
                    // Out of time, or no leader found: never proposed by the last try.
                    record("fail")
                    break
                }
                let left = max(1, deadline - backend.clock.nowMs)
                let outcome: WriteOutcome
                var read: String?
                if isGet {
                    do {
                        let answer = try await backend.request(node, .get(key: key), timeoutMs: left)
                        guard case let .read(value, index) = answer else { throw RequestFailure(.failed("not a read"), "\(answer)") }
                        read = value ?? historyNull
                        outcome = .ok(index: index, term: 0)
                    } catch let failure as RequestFailure {
                        outcome = failure.outcome
                    } catch {
                        outcome = .failed("\(error)")
                    }
                } else {
                    outcome = await backend.put(node, key: key, value: value, timeoutMs: left)
                }
                switch outcome {
                case let .ok(index, term):
                    if isGet {
                        record("ok", value: read ?? historyNull, [("index", "\(index)")])
                    } else {
                        record("ok", [("index", "\(index)"), ("term", "\(term)")])
                    }
                    ended = true
                case let .refused(_, leader):
                    target = leader == node ? nil : leader
                    if target == nil {
                        await backend.clock.sleep(ms: 50)
                        target = await Engine.currentLeader(backend, among: nil)
                    }
                case let .unknown(_, leader):
                    record("unknown")
                    generation += 1
                    target = leader == node ? nil : leader
                    ended = true
                case .failed:
                    record("fail")
                    ended = true
                }
            }
            control.withLockedValue { $0.inFlight -= 1 }
        }
    }
}
