// raft-fixtures DIR: writes the files of fixtures/ (see fixtures/README.md) into DIR.
// Deterministic: the same build writes the same bytes. The snapshot bodies come from the
// system zlib, so another zlib version may compress them differently; what they hold
// (and so every test) stays the same.
import Foundation
import Raft
import RaftStorage

/// The configuration of the valid snapshot fixture.
let configuration = Configuration(
    voters: ["n1", "n2", "n3"], addresses: ["n1": "n1.sock", "n2": "n2.sock", "n3": "n3.sock"])
/// The state of the valid snapshot fixture.
let state = Array("alpha=1\nbeta=22\ngamma=333\n".utf8)

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("raft-fixtures: \(message)\n".utf8))
    exit(1)
}

func write(_ bytes: [UInt8], _ path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func read(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// A log directory holding one segment with these records, then `tail` bytes.
func writeLog(_ dir: String, _ entries: [Entry], tail: [UInt8] = []) throws -> [Int] {
    try? FileManager.default.removeItem(atPath: dir)
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var bytes = LogSegment.header(firstIndex: entries.first?.index ?? 1)
    var offsets: [Int] = []
    for e in entries {
        offsets.append(bytes.count)
        LogSegment.appendRecord(e, to: &bytes)
    }
    bytes += tail
    try write(bytes, dir + "/" + LogSegment.fileName(firstIndex: entries.first?.index ?? 1))
    return offsets
}

let arguments = CommandLine.arguments
guard arguments.count == 2, !arguments[1].hasPrefix("-") else {
    fail("usage: raft-fixtures DIR (writes the fixtures of fixtures/README.md into DIR)")
}
let out = arguments[1]

do {
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let work = NSTemporaryDirectory() + "raft-fixtures-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: work) }

    // Snapshots.
    let store = try SnapshotStore(directory: work)
    let writer = try store.create(index: 42, term: 3, configuration: configuration)
    for piece in [state[0..<8], state[8...]] { try writer.write(piece) }
    let meta = try writer.finish()
    let valid = try read(store.path(for: meta))
    try write(valid, out + "/snapshot-valid.ss")
    let headerSize = SnapshotHeader(index: 42, term: 3, configuration: configuration).headerSize

    var badChecksum = valid
    badChecksum[headerSize + (valid.count - headerSize) / 2] ^= 0xff
    try write(badChecksum, out + "/snapshot-bad-checksum.ss")

    try write(Array(valid[0..<valid.count - 7]), out + "/snapshot-truncated.ss")

    var future = valid
    future[11] = 2  // format version 2 (big-endian u32 at byte 8)
    let crc = CRC32.of(future[0..<headerSize - 4])
    for k in 0..<4 { future[headerSize - 4 + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(k))) }
    try write(future, out + "/snapshot-future-version.ss")

    // goraft: a line of %08x CRC-32, then json.Marshal of its Snapshot struct.
    let goraftState = Array(#"{"alpha":"1","beta":"22"}"#.utf8)
    let json = #"{"lastIndex":17,"lastTerm":2,"peers":[{"name":"n1","connectionString":"http://127.0.0.1:4001"},{"name":"n2","connectionString":"http://127.0.0.1:4002"},{"name":"n3","connectionString":"http://127.0.0.1:4003"}],"state":""#
        + Data(goraftState).base64EncodedString() + #"","path":"/var/lib/goraft/snapshot/2_17.ss"}"#
    let jsonBytes = Array(json.utf8)
    let line = String(CRC32.of(jsonBytes), radix: 16)
    let goraft = Array((String(repeating: "0", count: 8 - line.count) + line + "\n").utf8) + jsonBytes
    try write(goraft, out + "/goraft-2_17.ss")
    var goraftBad = goraft
    goraftBad[goraftBad.count - 10] ^= 0x01
    try write(goraftBad, out + "/goraft-bad-crc.ss")

    // Logs: six entries, the first a configuration.
    let entries = [
        Entry(index: 1, term: 1, type: .config, payload: configuration.encoded()),
        Entry(index: 2, term: 1, type: .noop),
        Entry(index: 3, term: 1, type: .command, payload: Array("put alpha 1".utf8)),
        Entry(index: 4, term: 2, type: .noop),
        Entry(index: 5, term: 2, type: .command, payload: Array("put beta 22".utf8)),
        Entry(index: 6, term: 2, type: .command, payload: Array("put gamma 333".utf8)),
    ]
    let offsets = try writeLog(out + "/log-valid", entries)
    var seventh: [UInt8] = []
    LogSegment.appendRecord(Entry(index: 7, term: 2, type: .command, payload: Array("put delta 4444".utf8)), to: &seventh)
    _ = try writeLog(out + "/log-torn", entries, tail: Array(seventh[0..<seventh.count / 2]))
    _ = try writeLog(out + "/log-reserved", entries, tail: [UInt8](repeating: 0, count: 4096))
    _ = try writeLog(out + "/log-torn-in-reserved", entries, tail: Array(seventh[0..<seventh.count / 2]) + [UInt8](repeating: 0, count: 4096))
    _ = try writeLog(out + "/log-damaged-middle", entries)
    let damaged = out + "/log-damaged-middle/" + LogSegment.fileName(firstIndex: 1)
    var bytes = try read(damaged)
    bytes[offsets[2] + 8 + 17] ^= 0x20  // first payload byte of entry 3: "put" -> "Put"
    try write(bytes, damaged)
    _ = try writeLog(out + "/log-index-gap", entries.filter { $0.index != 4 })

    // Meta.
    try write(MetaStore.encode(HardState(term: 3, votedFor: "n2")), out + "/meta-valid")

    print("raft-fixtures: wrote \(out): snapshot header \(headerSize) bytes, valid snapshot \(valid.count) bytes; log record offsets \(offsets), segment \(offsets.last! + LogSegment.recordSize(entries[5])) bytes, torn tail \(seventh.count / 2) bytes")
} catch {
    fail("\(error)")
}
