// RaftNodeHost is what both hosts of a `NodeMachine` share, the process runtime (RaftNode)
// and the simulator: they differ in their clock, network and threads, not in their files.
//
//   EventFiles.swift   events.jsonl and node.log, stamped by the host's clock
//   StateFiles.swift   the key-value state as a snapshot file, written and read back
//   SnapshotChunks.swift  the chunks a leader sends, read from files opened once
//   CarryOut.swift     the machine's outputs carried out in order under its contract

import Foundation
import Raft
import RaftNodeWire

/// Microseconds since the UNIX epoch: the wall clock in a process, simulated time in the
/// simulator.
public typealias HostClock = @Sendable () -> Int64

/// The wall clock.
public let wallClock: HostClock = {
    var t = timespec()
    clock_gettime(CLOCK_REALTIME, &t)
    return Int64(t.tv_sec) * 1_000_000 + Int64(t.tv_nsec / 1000)
}

/// A file appended to a line at a time, each line written as it comes (no buffering here:
/// a process killed keeps every line written before).
final class AppendedLines {
    private let handle: FileHandle?

    init(path: String) {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        handle = FileHandle(forWritingAtPath: path)
        _ = try? handle?.seekToEnd()
    }

    func write(_ line: String) { handle?.write(Data((line + "\n").utf8)) }
    func close() { try? handle?.close() }
}

/// `events.jsonl`: one JSON object a line, appended as it happens (SPEC section 4).
public final class EventLog {
    private let file: AppendedLines
    private let node: NodeID
    private let clock: HostClock
    /// Also receives each event as `key=value` words (for node.log), if set.
    public var mirror: ((String) -> Void)?

    public init(path: String, node: NodeID, clock: @escaping HostClock = wallClock) {
        self.node = node
        self.clock = clock
        file = AppendedLines(path: path)
    }

    public func write(_ event: NodeEvent, term: Term) {
        file.write(event.line(ts: Timestamp.rfc3339(unixMicros: clock()), node: node, term: term))
        mirror?(event.words(node: node, term: term))
    }

    public func close() { file.close() }
}

/// `node.log`: what a person reads: each event and each notice as a timestamped line.
public final class NodeLog {
    private let file: AppendedLines
    private let clock: HostClock

    public init(path: String, clock: @escaping HostClock = wallClock) {
        self.clock = clock
        file = AppendedLines(path: path)
    }

    public func write(_ text: String) { file.write(Timestamp.rfc3339(unixMicros: clock()) + " " + text) }

    public func close() { file.close() }
}
