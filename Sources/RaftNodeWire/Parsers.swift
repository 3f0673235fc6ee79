// RaftNodeWire is the node's outside as types, shared by every side: the node (process and
// simulator), the harness, the checker, the bench and the tests. No NIO, no I/O.
//
//   Parsers.swift          durations, sizes, node names, as flags and scenarios write them
//   JSONValue.swift        a small JSON value with a deterministic serialization, and a reader
//   RequestParser.swift    a fast reader of one client request line's members
//   ClientRequests.swift   the client requests of SPEC section 5, parsed
//   ClientAnswers.swift    the answers, typed: errors, status with per-peer progress
//   NodeEvents.swift       the events of SPEC section 4 as an enum that writes and reads lines
//   NodeSettings.swift     the settings table: scenario key, flag, unit, default, field
//   Timestamps.swift       the one clock format of a run (RFC 3339, microseconds, UTC)
//   FaultSwitch.swift      the faults planted for the proofs (-DRAFT_FAULTS builds only)

/// "150ms", "2s", "1m" -> milliseconds; nil for anything else. The node's flags and the
/// harness's scenarios read durations the same way.
public func parseDuration(_ s: String) -> Int? { parseDuration(s, units: [("ms", 1), ("s", 1000), ("m", 60_000)]) }

/// A budget of the harness's command line: "0", or a duration with "h" too ("20m", "1h").
public func parseBudget(_ s: String) -> Int? {
    s == "0" ? 0 : parseDuration(s, units: [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)])
}

private func parseDuration(_ s: String, units: [(String, Int)]) -> Int? {
    for (suffix, factor) in units where s.hasSuffix(suffix) {
        let number = s.dropLast(suffix.count)
        if let n = Int(number), n >= 0, !number.hasPrefix("+") { return n * factor }
    }
    return nil
}

/// "65536", "64KiB", "1MiB", "100B" -> bytes; nil for anything else.
public func parseSize(_ s: String) -> Int? {
    for (suffix, factor) in [("KiB", 1024), ("MiB", 1 << 20), ("B", 1), ("", 1)] where s.hasSuffix(suffix) {
        if let n = Int(s.dropLast(suffix.count)), n >= 0 { return n * factor }
    }
    return nil
}

/// Node names: `[a-z][a-z0-9-]*`.
public func isValidNodeName(_ s: String) -> Bool {
    guard let first = s.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
    return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
}
