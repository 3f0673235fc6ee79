import Foundation
import Raft
@testable import RaftStorage

/// A fresh empty directory under the system's temporary directory, removed by `cleanup`.
struct TempDir {
    let path: String

    init(_ name: String = "t") {
        let base = NSTemporaryDirectory() + "raft-storage-tests"
        try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        var template = Array((base + "/\(name)-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func join(_ name: String) -> String { path + "/" + name }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository's fixtures/ directory.
let fixturesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    url.deleteLastPathComponent()  // RaftStorageTests
    url.deleteLastPathComponent()  // Tests
    return url.deletingLastPathComponent().appendingPathComponent("fixtures").path
}()

func fixture(_ name: String) -> String { fixturesDirectory + "/" + name }

/// Copies a fixture (file or directory) into `dir` so that opening it may repair it.
func copyFixture(_ name: String, to dir: TempDir) throws -> String {
    let to = dir.join(name)
    try FileManager.default.copyItem(atPath: fixture(name), toPath: to)
    return to
}

func readBytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

func writeBytes(_ bytes: [UInt8], _ path: String) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

func fileSize(_ path: String) -> UInt64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.uint64Value ?? 0
}

/// A payload that depends on the index and term, so that a test can check every byte.
func payload(_ index: LogIndex, _ term: Term, size: Int = 24) -> [UInt8] {
    var h = StableHash()
    h.combine(index)
    h.combine(term)
    var x = h.finalized
    return (0..<size).map { _ in
        x = x &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: x >> 33)
    }
}

func entries(_ range: ClosedRange<LogIndex>, term: Term, size: Int = 24) -> [Entry] {
    range.map { Entry(index: $0, term: term, type: .command, payload: payload($0, term, size: size)) }
}

/// Runs `body` and returns the `StorageError` it throws (nil if it throws none).
func storageError(_ body: () throws -> Void) -> StorageError? {
    do {
        try body()
        return nil
    } catch let e as StorageError {
        return e
    } catch {
        return StorageError(.io, file: "?", "unexpected error \(error)")
    }
}

func segmentFiles(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".seg") }.sorted()
}
