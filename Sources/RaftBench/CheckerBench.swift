import Foundation
import HarnessCheck

/// Check 6's speed goal (issue 11): a 10,000-operation history over 64 keys, 16 clients,
/// 1 % `unknown` operations, checked for linearizability in under a second. Medians of 5.
func checkerBench() {
    print("Linearizability (check 6): synthetic linearizable histories, 16 clients, 1% unknown puts, half gets")
    for (operations, keys) in [(10_000, 64), (10_000, 8), (100_000, 64)] {
        let history = Linearizability.syntheticHistory(seed: 7, operations: operations, keys: keys, clients: 16, unknownShare: 0.01)
        var times: [Double] = []
        var passed = true
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            passed = Linearizability.check(byKey: history).passed && passed
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
        }
        let median = times.sorted()[2]
        let verdict = passed ? "linearizable" : "NOT linearizable (a bug of the checker: the history is by construction)"
        let goal = operations == 10_000 && keys == 64 ? (median < 1 ? "  goal < 1 s: met" : "  goal < 1 s: NOT MET") : ""
        print(String(format: "  %6d operations over %2d keys: %.3f s (median of 5), %@%@", operations, keys, median, verdict, goal))
    }
}
