import Raft

/// The format of a log segment file, `log/<first index, 20 digits>.seg`:
///
/// ```
/// header (32 bytes): magic "RAFTLOG\0", version u32 (1), first index u64,
///                    reserved u64 (0), CRC-32 of the 28 bytes before it (u32)
/// records:           length u32 (bytes of index..payload), CRC-32 u32 of the length and
///                    the body, then the body: index u64, term u64, type u8, payload
/// ```
/// Integers are big-endian. Records hold consecutive indices from the first index on, with
/// terms that never decrease. A segment only grows at its end; the newest segment is the
/// only one that can end in an interrupted (torn) record.
///
/// After the records a segment may end in zero bytes: space reserved ahead of the appends
/// (`LogStore` allocates it in steps, so that a sync after an append does not also have to
/// write the file's new size). No record starts with a zero length, so zero bytes from a
/// record boundary to the end of the file are the end of the records, not damage.
public enum LogSegment {
    public static let magic: [UInt8] = Array("RAFTLOG\0".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 32
    /// Length and checksum before each record's body.
    public static let recordPrefixSize = 8
    /// Index, term and type.
    public static let bodyFixedSize = 17
    /// The largest record body accepted (a sanity bound for reading damaged lengths).
    public static let maxBodySize = 1 << 28
    public static let fileExtension = ".seg"

    public static func fileName(firstIndex: LogIndex) -> String {
        zeroPadded(firstIndex) + fileExtension
    }

    /// The first index a segment file name stands for, or nil for other names.
    public static func firstIndex(fileName name: String) -> LogIndex? {
        guard name.hasSuffix(fileExtension) else { return nil }
        let digits = name.dropLast(fileExtension.count)
        guard digits.count == 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return LogIndex(digits)
    }

    public static func header(firstIndex: LogIndex) -> [UInt8] {
        var w = ByteWriter(capacity: headerSize)
        for b in magic { w.write(b) }
        w.write(version)
        w.write(firstIndex)
        w.write(UInt64(0))
        w.write(CRC32.of(w.bytes))
        return w.bytes
    }

    /// Appends the record of `entry` to `buffer`.
    public static func appendRecord(_ entry: Entry, to buffer: inout [UInt8]) {
        let start = buffer.count
        let length = UInt32(bodyFixedSize + entry.payload.count)
        appendBE(length, to: &buffer)
        appendBE(UInt32(0), to: &buffer)  // checksum, filled in below
        appendBE(entry.index, to: &buffer)
        appendBE(entry.term, to: &buffer)
        buffer.append(entry.type.rawValue)
        buffer.append(contentsOf: entry.payload)
        var crc = CRC32()
        buffer.withUnsafeBytes { raw in
            crc.update(UnsafeRawBufferPointer(rebasing: raw[start..<start + 4]))
            crc.update(UnsafeRawBufferPointer(rebasing: raw[start + 8..<raw.count]))
        }
        let c = crc.value
        buffer[start + 4] = UInt8(truncatingIfNeeded: c >> 24)
        buffer[start + 5] = UInt8(truncatingIfNeeded: c >> 16)
        buffer[start + 6] = UInt8(truncatingIfNeeded: c >> 8)
        buffer[start + 7] = UInt8(truncatingIfNeeded: c)
    }

    public static func recordSize(_ entry: Entry) -> Int {
        recordPrefixSize + bodyFixedSize + entry.payload.count
    }

    /// Reads a segment file without changing it: its records up to the first bad one, and
    /// what is wrong there. Throws only when the file cannot be read or its header is bad.
    public static func scan(path: String) throws -> SegmentScan {
        let bytes = try File.openForReading(path).readAll()
        return try scan(bytes: bytes, path: path)
    }

    static func scan(bytes: [UInt8], path: String) throws -> SegmentScan {
        guard bytes.count >= headerSize else {
            throw StorageError(.damaged, file: path, offset: 0, "segment header is \(bytes.count) bytes, want \(headerSize)")
        }
        guard Array(bytes[0..<8]) == magic else {
            throw StorageError(.damaged, file: path, offset: 0, "not a log segment (bad magic)")
        }
        let v = readBE32(bytes, 8)
        if v > version {
            throw StorageError(.unsupportedVersion, file: path, offset: 8, "segment format version \(v) is newer than this build reads (\(version))")
        }
        guard v == version else { throw StorageError(.damaged, file: path, offset: 8, "bad segment format version \(v)") }
        let storedCRC = readBE32(bytes, 28)
        let crc = CRC32.of(bytes[0..<28])
        guard storedCRC == crc else {
            throw StorageError(.damaged, file: path, offset: 28, "segment header checksum mismatch: stored \(hex8(storedCRC)), computed \(hex8(crc))")
        }
        let first = readBE64(bytes, 12)
        var scan = SegmentScan(file: path, firstIndex: first, fileSize: UInt64(bytes.count))
        var p = headerSize
        var expected = first
        var lastTerm: Term = 0
        while p < bytes.count {
            let left = bytes.count - p
            func bad(_ detail: String, maybeTorn: Bool) {
                scan.problem = StorageError(.damaged, file: path, offset: UInt64(p), detail)
                scan.looksTorn = maybeTorn && !validRecordFollows(bytes, after: p, expected: expected)
            }
            guard left >= recordPrefixSize else {
                bad("incomplete record: \(left) bytes left, a record header takes \(recordPrefixSize)", maybeTorn: true)
                break
            }
            let length = Int(readBE32(bytes, p))
            if length == 0 && isZero(bytes, from: p) {
                scan.reservedBytes = UInt64(left)
                break
            }
            guard length >= bodyFixedSize && length <= maxBodySize else {
                bad("bad record length \(length)", maybeTorn: true)
                break
            }
            guard left - recordPrefixSize >= length else {
                bad("incomplete record: \(length) body bytes declared, \(left - recordPrefixSize) in the file", maybeTorn: true)
                break
            }
            let stored = readBE32(bytes, p + 4)
            let actual = recordCRC(bytes, at: p, length: length)
            guard stored == actual else {
                bad("record checksum mismatch: stored \(hex8(stored)), computed \(hex8(actual))", maybeTorn: true)
                break
            }
            let index = readBE64(bytes, p + 8)
            let term = readBE64(bytes, p + 16)
            let typeByte = bytes[p + 24]
            guard index == expected else {
                bad("index gap: expected index \(expected), found \(index)", maybeTorn: false)
                break
            }
            guard term >= lastTerm else {
                bad("term goes back from \(lastTerm) to \(term) at index \(index)", maybeTorn: false)
                break
            }
            guard let type = EntryType(rawValue: typeByte) else {
                bad("unknown entry type \(typeByte) at index \(index)", maybeTorn: false)
                break
            }
            let payloadStart = p + recordPrefixSize + bodyFixedSize
            let end = p + recordPrefixSize + length
            scan.entries.append(Entry(index: index, term: term, type: type, payload: Array(bytes[payloadStart..<end])))
            scan.offsets.append(UInt64(p))
            lastTerm = term
            expected += 1
            p = end
            scan.validEnd = UInt64(p)
        }
        return scan
    }

    /// Whether every byte from `p` to the end is zero.
    static func isZero(_ bytes: [UInt8], from p: Int) -> Bool {
        bytes.withUnsafeBytes { raw in
            var i = p
            // Eight bytes at a time: a reserved tail is up to a few MiB.
            while i + 8 <= raw.count {
                if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
                i += 8
            }
            while i < raw.count {
                if raw[i] != 0 { return false }
                i += 1
            }
            return true
        }
    }

    static func recordCRC(_ bytes: [UInt8], at p: Int, length: Int) -> UInt32 {
        var crc = CRC32()
        crc.update(bytes[p..<p + 4])
        crc.update(bytes[(p + 8)..<(p + 8 + length)])
        return crc.value
    }

    /// Whether a complete record with a good checksum and a plausible index starts anywhere
    /// after the bad record at `p`. If one does, the bad record is damage in the middle of
    /// the log, not the torn end of an interrupted append.
    static func validRecordFollows(_ bytes: [UInt8], after p: Int, expected: LogIndex) -> Bool {
        let minRecord = recordPrefixSize + bodyFixedSize
        guard bytes.count - p > minRecord else { return false }
        let maxIndex = expected + LogIndex((bytes.count - p) / minRecord)
        var q = p + 1
        while q + minRecord <= bytes.count {
            let length = Int(readBE32(bytes, q))
            if length >= bodyFixedSize && length <= bytes.count - q - recordPrefixSize {
                let index = readBE64(bytes, q + 8)
                if index >= expected && index <= maxIndex && readBE32(bytes, q + 4) == recordCRC(bytes, at: q, length: length) {
                    return true
                }
            }
            q += 1
        }
        return false
    }
}

/// What `LogSegment.scan` read from one segment file.
public struct SegmentScan: Sendable {
    public var file: String
    /// The first index, from the header.
    public var firstIndex: LogIndex
    /// The good records, in order.
    public var entries: [Entry] = []
    /// The byte offset of each entry's record.
    public var offsets: [UInt64] = []
    /// Where the last good record ends (the header's end when there is none).
    public var validEnd = UInt64(LogSegment.headerSize)
    /// Zero bytes after the records, to the end of the file: reserved space, not damage.
    public var reservedBytes: UInt64 = 0
    public var fileSize: UInt64
    /// The first bad record, or nil when the file is good records to its end.
    public var problem: StorageError?
    /// Whether the bad bytes look like an append interrupted by a crash: an incomplete
    /// record, or one with a bad length or checksum, with no good record after it.
    public var looksTorn = false

    init(file: String, firstIndex: LogIndex, fileSize: UInt64) {
        self.file = file
        self.firstIndex = firstIndex
        self.fileSize = fileSize
    }

    /// The index of the last good record (`firstIndex - 1` when there is none).
    public var lastIndex: LogIndex { firstIndex + LogIndex(entries.count) - 1 }
}

func appendBE(_ v: UInt32, to buffer: inout [UInt8]) {
    buffer.append(UInt8(truncatingIfNeeded: v >> 24))
    buffer.append(UInt8(truncatingIfNeeded: v >> 16))
    buffer.append(UInt8(truncatingIfNeeded: v >> 8))
    buffer.append(UInt8(truncatingIfNeeded: v))
}

func appendBE(_ v: UInt64, to buffer: inout [UInt8]) {
    appendBE(UInt32(truncatingIfNeeded: v >> 32), to: &buffer)
    appendBE(UInt32(truncatingIfNeeded: v), to: &buffer)
}

func readBE32(_ b: [UInt8], _ p: Int) -> UInt32 {
    UInt32(b[p]) << 24 | UInt32(b[p + 1]) << 16 | UInt32(b[p + 2]) << 8 | UInt32(b[p + 3])
}

func readBE64(_ b: [UInt8], _ p: Int) -> UInt64 {
    UInt64(readBE32(b, p)) << 32 | UInt64(readBE32(b, p + 4))
}
