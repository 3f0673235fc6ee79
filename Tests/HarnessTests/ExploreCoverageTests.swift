import Foundation
import Harness
import Testing

@Suite("explore: coverage from a run's files")
struct ExploreCoverageTests {
    /// A run directory with a harness.log and events.jsonl files, times in seconds after 12:00:00.
    func run(_ steps: [(Double, String, String)], _ events: [String: [(Double, String)]]) throws -> String {
        let dir = NSTemporaryDirectory() + "explore-coverage-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/nodes", withIntermediateDirectories: true)
        var log = ["scenario t file t.scenario seed 1 raft-node /x sockets /y started 2026-01-01T12:00:00.000000Z"]
        for (i, (t, text, outcome)) in steps.enumerated() {
            log.append(String(format: "%8.3fs  line %-3d %-40@ %@ [%dms]", t, i + 1, text as NSString, outcome as NSString, 5))
        }
        try log.joined(separator: "\n").write(toFile: dir + "/harness.log", atomically: true, encoding: .utf8)
        for (node, lines) in events {
            try FileManager.default.createDirectory(atPath: dir + "/nodes/" + node, withIntermediateDirectories: true)
            let text = lines.map { t, rest in
                let s = 10 + Int(t)
                let micros = Int((t - Double(Int(t))) * 1_000_000)
                return String(format: #"{"ts":"2026-01-01T12:00:%02d.%06dZ","node":"%@","term":1,%@}"#, s, micros, node as NSString, rest as NSString)
            }.joined(separator: "\n")
            try text.write(toFile: dir + "/nodes/" + node + "/events.jsonl", atomically: true, encoding: .utf8)
        }
        return dir
    }

    // Event times are 10 s later than step times of the same number (the format adds 10).
    @Test("Each target state is seen in the files that show it")
    func everyTarget() throws {
        let dir = try run(
            [
                (0.2, "cluster n1 n2 n3 n4 n5", "ok (n1 n2 n3 n4 n5)"),
                (11.1, "kill $f", "ok (n3)"),
                (12.0, "isolate follower as c", "ok (n5)"),
                (14.0, "add $w", "ok (n4 at 30)"),
            ],
            [
                "n1": [
                    (0.5, #""event":"role","role":"leader""#),
                    (0.6, #""event":"config","index":10,"members":["n1","n2","n3"],"learners":["n6"],"phase":"appended""#),
                    (0.7, #""event":"commit","index":9"#),
                    (1.0, #""event":"role","role":"follower""#),
                ],
                "n2": [
                    (0.5, #""event":"role","role":"leader""#),
                    (0.6, #""event":"config","index":12,"members":["n1","n3"],"learners":[],"phase":"appended""#),
                    (0.7, #""event":"config","index":12,"members":["n1","n3"],"learners":[],"phase":"committed""#),
                    (0.8, #""event":"role","role":"follower""#),
                    (0.9, #""event":"stop","reason":"removed""#),
                ],
                "n3": [
                    (1.0, #""event":"role","role":"snapshotting""#),
                    (1.2, #""event":"start","lastIndex":5,"commitIndex":0,"snapshotIndex":0"#),
                    (1.5, #""event":"snapshot-installed","from":"n1","index":40,"snapshotTerm":1,"bytes":100,"ms":400"#),
                ],
                "n4": [
                    (0.1, #""event":"start","lastIndex":0,"commitIndex":0,"snapshotIndex":0"#),
                    (0.1, #""event":"config","index":0,"members":["n1","n2","n3","n4"],"learners":[],"phase":"committed""#),
                    (3.5, #""event":"start","lastIndex":0,"commitIndex":0,"snapshotIndex":0"#),
                    (4.0, #""event":"config","index":30,"members":["n1","n2","n3","n4"],"learners":[],"phase":"committed""#),
                ],
                "n5": [(3.0, #""event":"snapshot-installed","from":"n1","index":40,"snapshotTerm":1,"bytes":100,"ms":20"#)],
            ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(ExploreCoverage.measure(runDirectory: dir) == ExploreTarget.allCases)
    }

    @Test("Near misses are not counted")
    func nearMisses() throws {
        let dir = try run(
            [
                (0.2, "set election-timeout 500ms", "ok"),
                (0.3, "cluster n1 n2 n3", "ok (n1 n2 n3)"),
                (11.1, "kill $f", "ok (n1)"),
                (12.0, "isolate follower as c", "ok (n3)"),
            ],
            [
                // a leader whose change committed before it stepped down
                "n1": [
                    (0.5, #""event":"role","role":"leader""#),
                    (0.6, #""event":"config","index":10,"members":["n1","n2","n3"],"learners":["n6"],"phase":"appended""#),
                    (0.7, #""event":"config","index":10,"members":["n1","n2","n3"],"learners":["n6"],"phase":"committed""#),
                    (1.0, #""event":"role","role":"follower""#),
                ],
                // a transfer that ended (installed) before the kill and the restart
                "n2": [
                    (1.0, #""event":"role","role":"snapshotting""#),
                    (1.05, #""event":"snapshot-installed","from":"n1","index":40,"snapshotTerm":1,"bytes":100,"ms":400"#),
                    (1.2, #""event":"start","lastIndex":5,"commitIndex":0,"snapshotIndex":0"#),
                ],
                // the cut node restarted before its install; installs under 500ms
                "n3": [
                    (2.5, #""event":"start","lastIndex":5,"commitIndex":5,"snapshotIndex":0"#),
                    (3.0, #""event":"snapshot-installed","from":"n1","index":40,"snapshotTerm":1,"bytes":100,"ms":20"#),
                ],
            ])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(ExploreCoverage.measure(runDirectory: dir) == [])
    }
}
