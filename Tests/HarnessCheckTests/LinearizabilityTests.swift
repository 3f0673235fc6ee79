import Foundation
import HarnessCheck
import RaftNodeWire
import Testing

/// Check 6's search (SPEC section 3): each key a register; `unknown` operations may take
/// effect at any time after their invocation, or never.
@Suite("Linearizability of a register history")
struct LinearizabilityTests {
    var position = 0
    mutating func op(_ client: String, _ kind: RegisterOperation.Kind, _ invoked: Int64, _ completed: Int64?) -> RegisterOperation {
        position += 1
        return RegisterOperation(client: client, kind: kind, invoked: invoked, completed: completed, position: position)
    }

    @Test mutating func sequentialAndOverlappingHistoriesAreLinearizable() {
        let sequential = [op("a", .put("x"), 0, 10), op("b", .get("x"), 20, 30), op("a", .put("y"), 40, 50), op("b", .get("y"), 60, 70)]
        #expect(Linearizability.check(sequential) == .linearizable)
        // A read that overlaps the put may see the old value or the new one.
        let overlapping = [op("a", .put("x"), 0, 10), op("a", .put("y"), 20, 100), op("b", .get("x"), 30, 40), op("c", .get("y"), 50, 60)]
        #expect(Linearizability.check(overlapping) == .linearizable)
        #expect(Linearizability.check([op("b", .get(nil), 0, 5)]) == .linearizable)
        #expect(Linearizability.check([]) == .linearizable)
    }

    @Test mutating func aStaleReadIsAViolationWithAMinimalFragment() throws {
        let putX = op("a", .put("x"), 0, 10)
        let putY = op("a", .put("y"), 20, 30)
        let filler = op("c", .get("x"), 12, 15)
        let stale = op("b", .get("x"), 40, 50)
        let later = op("a", .put("z"), 60, 70)
        guard case let .violation(fragment, minimal) = Linearizability.check([putX, filler, putY, stale, later]) else {
            Issue.record("a stale read passed")
            return
        }
        #expect(minimal)
        // The read of x after y was written, y's put, and x's put (which the read needs).
        #expect(Set(fragment) == [putX, putY, stale], "\(fragment)")
        // Without any one of its gets, or a put no get of it reads, it can be linearized.
        #expect(Linearizability.isLinearizable([putX, stale]) == true)
        #expect(Linearizability.isLinearizable([putX, putY]) == true)
    }

    @Test mutating func aReadOfAValueNeverWrittenIsAViolation() {
        guard case .violation = Linearizability.check([op("a", .put("x"), 0, 10), op("b", .get("w"), 20, 30)]) else {
            Issue.record("a read of a value never written passed")
            return
        }
    }

    /// What a naive checker gets wrong: an `unknown` put that took effect after its reader's
    /// deadline (a naive one drops unknown operations, and the read of y is then of a value
    /// never written), and one that never took effect (a naive one that makes it complete at
    /// once rejects the later read of x).
    @Test mutating func unknownOperationsMayTakeEffectLateOrNever() {
        let late = [op("a", .put("x"), 0, 10), op("a", .put("y"), 20, nil), op("b", .get("x"), 30, 40), op("b", .get("y"), 1_000, 1_010)]
        #expect(Linearizability.check(late) == .linearizable)
        let never = [op("a", .put("x"), 0, 10), op("c", .put("y"), 20, nil), op("b", .get("x"), 500, 510), op("b", .get("x"), 900, 910)]
        #expect(Linearizability.check(never) == .linearizable)
        // But not before its invocation.
        let early = [op("a", .put("x"), 0, 10), op("b", .get("y"), 20, 30), op("c", .put("y"), 40, nil)]
        guard case .violation = Linearizability.check(early) else {
            Issue.record("an unknown put was read before it was invoked")
            return
        }
    }

    @Test func aSearchPastItsBudgetIsUnknownNeverAPass() {
        let history = Linearizability.syntheticHistory(seed: 3, operations: 400, keys: 1, clients: 16, unknownShare: 0.05)
        #expect(Linearizability.check(history["k0"]!, budget: 10) == .unknown)
        let report = Linearizability.check(byKey: history, budget: 10)
        #expect(!report.passed && report.unknownKeys == ["k0"])
    }

    @Test func aGeneratedHistoryOf10000OperationsOver64KeysIsLinearizableAndABrokenOneIsCaught() throws {
        var history = Linearizability.syntheticHistory(seed: 11, operations: 10_000, keys: 64, clients: 16, unknownShare: 0.01)
        let started = ContinuousClock.now
        let report = Linearizability.check(byKey: history)
        let took = started.duration(to: .now)
        print("linearizability: \(report.operations) operations over \(report.keys) keys, 16 clients, 1% unknown: \(took)")
        #expect(report.passed, "\(String(describing: report.violation))")
        #expect(report.operations == 10_000 && report.keys == 64)
        #expect(took < .seconds(30), "a safety net only; make bench measures the speed")

        // One read answered with the value before the latest completed write: caught.
        let key = history.keys.sorted()[0]
        var ops = history[key]!.sorted { $0.invoked < $1.invoked }
        let puts = ops.indices.filter { if case .put = ops[$0].kind, ops[$0].completed != nil { true } else { false } }
        // A put, and one invoked after it completed: after the second, the first's value is gone.
        let first = puts[0]
        let second = try #require(puts.first { ops[$0].invoked > ops[first].completed! })
        guard case let .put(old) = ops[first].kind else { return }
        let end = ops[second].completed!
        ops.append(RegisterOperation(client: "late", kind: .get(old), invoked: end + 1_000_000, completed: end + 1_000_010, position: 99_999))
        // Nothing else may write `old` again, and no later put may be missing: the read is stale.
        ops.removeAll { $0.invoked > end && $0.client != "late" }
        history[key] = ops
        let broken = Linearizability.check(byKey: history)
        let violation = try #require(broken.violation)
        #expect(violation.key == key && violation.fragment.contains { $0.client == "late" })
    }

    /// Every order of the operations that keeps real-time order, unknown ones included or
    /// left out: the definition, for small histories.
    static func bruteForce(_ ops: [RegisterOperation]) -> Bool {
        let optional = ops.indices.filter { ops[$0].completed == nil }
        for mask in 0..<(1 << optional.count) {
            let left = Set(optional.enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element))
            let chosen = ops.indices.filter { !left.contains($0) }
            if orders(chosen.map { ops[$0] }, placed: [], value: nil) { return true }
        }
        return false
    }

    static func orders(_ rest: [RegisterOperation], placed: [RegisterOperation], value: String?) -> Bool {
        if rest.isEmpty { return true }
        for (i, o) in rest.enumerated() {
            // o may go next only if no other remaining operation completed before o began.
            guard !rest.contains(where: { $0 != o && ($0.completed ?? .max) < o.invoked }) else { continue }
            var next = rest
            next.remove(at: i)
            switch o.kind {
            case let .put(v): if orders(next, placed: placed + [o], value: v) { return true }
            case let .get(v): if v == value, orders(next, placed: placed + [o], value: value) { return true }
            }
        }
        return false
    }

    @Test func theSearchAgreesWithTheDefinitionOnThousandsOfSmallRandomHistories() {
        var rng = SystemRandomNumberGenerator()
        var seed = UInt64.random(in: 0...UInt64.max, using: &rng)
        var violations = 0
        for round in 0..<3_000 {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            var r = seed
            func next(_ n: UInt64) -> UInt64 { r = r &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return (r >> 33) % n }
            var ops: [RegisterOperation] = []
            for i in 0..<Int(1 + next(6)) {
                let start = Int64(next(40))
                let end: Int64? = next(8) == 0 ? nil : start + Int64(1 + next(30))
                let kind: RegisterOperation.Kind
                if next(2) == 0 {
                    kind = .put("v\(i)")
                } else {
                    let pick = next(4)
                    kind = .get(pick == 0 ? nil : "v\(next(6))")
                }
                ops.append(RegisterOperation(client: "c\(i)", kind: kind, invoked: start, completed: kind == .get(nil) || end != nil ? (end ?? start + 5) : nil, position: i))
            }
            let expected = Self.bruteForce(ops)
            let found = Linearizability.isLinearizable(ops)
            #expect(found == expected, "round \(round), seed \(seed): \(ops)")
            if !expected { violations += 1 }
            if found != expected { return }
        }
        #expect(violations > 300, "the random histories hold too few violations to test anything")
    }

    @Test func timeStampsReadBackToTheMicrosecond() {
        for micros: Int64 in [0, 1_767_225_600_000_000, 1_767_225_600_123_456, 1_796_169_599_999_999, 951_782_400_000_001] {
            #expect(Timestamp.unixMicros(rfc3339: Timestamp.rfc3339(unixMicros: micros)) == micros)
        }
        #expect(Timestamp.unixMicros(rfc3339: "2026-01-01T00:00:01Z") == 1_767_225_601_000_000)
        #expect(Timestamp.unixMicros(rfc3339: "2026-01-01T00:00:01.5Z") == 1_767_225_601_500_000)
        for bad in ["", "2026-01-01 00:00:01Z", "2026-13-01T00:00:01Z", "2026-01-01T00:00:01.1234567Z", "2026-01-01T00:00:01"] {
            #expect(Timestamp.unixMicros(rfc3339: bad) == nil, "\(bad)")
        }
    }
}
