import Foundation
import Harness
import Testing

@Suite("Process back end")
struct ProcessBackendTests {
    @Test("Three raft-node processes elect a leader, take 10 writes, converge, and end with the back end")
    func tinyScenarioEndToEnd() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hx-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let scenario = try ScenarioParser.parse(
            "cluster n1 n2 n3\nawait leader within 10s\nwrite 10\nawait converged within 10s\n", file: "tiny.scenario")
        let recorder = try RunDirectoryRecorder(directory: dir)
        let backend = try ProcessBackend(runDirectory: dir, seed: 1)
        let engine = Engine(backend: backend, recorder: recorder, seed: 1)
        let failure = await engine.run(scenario)
        let pids = backend.pids
        await backend.shutdown()
        recorder.close()
        #expect(failure == nil, "\(failure.map { "\($0)" } ?? "")")
        #expect(pids.count == 3)
        for (name, pid) in pids { #expect(kill(pid, 0) != 0, "\(name) (pid \(pid)) outlived the back end") }
        let history = try String(contentsOfFile: dir + "/history.jsonl", encoding: .utf8)
        #expect(history.split(separator: "\n").filter { $0.contains(#""type":"ok""#) }.count == 10)
        let log = try String(contentsOfFile: dir + "/harness.log", encoding: .utf8)
        #expect(log.contains("converged applied="))
    }
}
