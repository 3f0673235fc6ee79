import Foundation
import HarnessCheck
import RaftNodeHost
import RaftNodeWire

/// Writes a run's `harness.log` and `history.jsonl` (SPEC section 3), each line flushed as
/// it is written, so that a run cut short still leaves what happened up to then.
public final class RunDirectoryRecorder: RunRecorder, Sendable {
    public let directory: String
    private let files: Locked<(log: FileHandle, history: FileHandle)>
    private let clock: any RunClock

    public init(directory: String, clock: any RunClock = WallClock()) throws {
        self.directory = directory
        self.clock = clock
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func open(_ name: String) throws -> FileHandle {
            let path = directory + "/" + name
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw RecorderError(description: "cannot create \(path)")
            }
            return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }
        files = Locked((try open("harness.log"), try open("history.jsonl")))
    }

    public func log(_ line: String) {
        files.withLockedValue { try? $0.log.write(contentsOf: Data((line + "\n").utf8)) }
    }

    /// One history line; `index` and `term` are written as numbers, `historyNull` as null,
    /// `ts` is added.
    public func history(_ fields: [(String, String)]) {
        var parts: [String] = []
        for (k, v) in fields {
            if v == historyNull {
                parts.append(jsonString(k) + ":null")
            } else if (k == "index" || k == "term"), UInt64(v) != nil {
                parts.append(jsonString(k) + ":" + v)
            } else {
                parts.append(jsonString(k) + ":" + jsonString(v))
            }
        }
        parts.append(#""ts":"# + jsonString(Timestamp.rfc3339(unixMicros: clock.unixMicros)))
        let line = "{" + parts.joined(separator: ",") + "}\n"
        files.withLockedValue { try? $0.history.write(contentsOf: Data(line.utf8)) }
    }

    public func close() {
        files.withLockedValue {
            try? $0.log.close()
            try? $0.history.close()
        }
    }
}

/// A history field value written as JSON `null` (the value a get read of a key with none).
public let historyNull = "\u{0}null"

/// The wall time now, UTC, RFC 3339 with microseconds (as events.jsonl).
public func timestamp() -> String { Timestamp.rfc3339(unixMicros: wallClock()) }

/// `report.json`: `{"scenario":..,"seed":..,"world":"process","verdict":"pass"|"fail"|"unknown","checks":[..],"ms":..}`;
/// each check as `CheckResult.json` gives it.
public struct RunReport: Sendable {
    public typealias Check = CheckResult

    public var scenario: String
    public var seed: UInt64
    /// `process` or `sim`.
    public var world: String
    public var checks: [Check]
    public var ms: Int

    public init(scenario: String, seed: UInt64, world: String = "process", checks: [Check], ms: Int) {
        self.scenario = scenario
        self.seed = seed
        self.world = world
        self.checks = checks
        self.ms = ms
    }

    public var passed: Bool { checks.allSatisfy(\.passed) }

    /// `fail` when a check failed; else `unknown` when a check could not finish; else `pass`.
    public var verdict: String {
        if checks.contains(where: { !$0.passed && !$0.unknown }) { return "fail" }
        return checks.contains(where: \.unknown) ? "unknown" : "pass"
    }

    public var json: String {
        let object = JSONValue.object([
            ("scenario", .string(scenario)), ("seed", .int(Int64(bitPattern: seed))), ("world", .string(world)), ("verdict", .string(verdict)),
            ("checks", .array(checks.map(\.json))), ("ms", .int(Int64(ms))),
        ])
        return object.serialized + "\n"
    }

    /// Written atomically: a reader sees the old report or the new one, never half.
    public func write(to directory: String) throws {
        try Data(json.utf8).write(to: URL(fileURLWithPath: directory + "/report.json"), options: .atomic)
    }
}

/// Counts from the nodes' events.jsonl files of a run: snapshots installed and elections
/// won (role events to leader).
public func runCounts(_ runDirectory: String) -> (snapshotsInstalled: Int, elections: Int) {
    let nodes = runDirectory + "/nodes"
    var installed = 0
    var elections = 0
    for n in (try? FileManager.default.contentsOfDirectory(atPath: nodes)) ?? [] {
        guard let text = try? String(contentsOfFile: nodes + "/" + n + "/events.jsonl", encoding: .utf8) else { continue }
        for line in text.split(separator: "\n") {
            switch NodeEventLine(parsing: String(line))?.event {
            case .snapshotInstalled?: installed += 1
            case .role("leader", _)?: elections += 1
            default: break
            }
        }
    }
    return (installed, elections)
}

/// A run directory that cannot be written.
public struct RecorderError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// A JSON string literal (the same quoting as the node's own JSON).
func jsonString(_ s: String) -> String { JSONValue.quote(s) }
