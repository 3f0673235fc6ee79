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

    /// Microseconds since the UNIX epoch for a time stamp `rfc3339(unixMicros:)` writes
    /// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`; fewer fraction digits, or none, are read too); nil for
    /// anything else.
    public static func unixMicros(rfc3339 text: String) -> Int64? {
        let b = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var n = 0
            for c in b[from..<(from + count)] {
                guard c >= 48 && c <= 57 else { return nil }
                n = n * 10 + Int(c - 48)
            }
            return n
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"), b[13] == UInt8(ascii: ":"),
            b[16] == UInt8(ascii: ":"), b.last == UInt8(ascii: "Z"),
            let year = number(0, 4), let month = number(5, 2), let day = number(8, 2), let hour = number(11, 2),
            let minute = number(14, 2), let second = number(17, 2), (1...12).contains(month), (1...31).contains(day), hour < 24,
            minute < 60, second < 61
        else { return nil }
        var micros = 0
        if b.count > 20 {
            guard b[19] == UInt8(ascii: "."), b.count - 21 >= 1, b.count - 21 <= 6, let f = number(20, b.count - 21) else { return nil }
            micros = f
            for _ in 0..<(6 - (b.count - 21)) { micros *= 10 }
        }
        // Days since the epoch (the civil-from-days inverse, proleptic Gregorian).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return (Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)) * 1_000_000 + Int64(micros)
    }

    /// The instant a simulated run starts at: 2026-01-01T00:00:00Z.
    public static let simulationEpochMicros: Int64 = 1_767_225_600_000_000
}
