#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one clock format of a run (SPEC sections 3 and 4): UTC, RFC 3339 with microseconds.
public enum Timestamp {
    /// `2026-12-02T18:59:44.123456Z` for microseconds since the UNIX epoch.
    public static func rfc3339(unixMicros: Int64) -> String {
        var seconds = time_t(unixMicros / 1_000_000)
        let micros = Int(unixMicros % 1_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(micros, 6))Z"
    }

    /// The instant a simulated run starts at: 2026-01-01T00:00:00Z.
    public static let simulationEpochMicros: Int64 = 1_767_225_600_000_000
}
