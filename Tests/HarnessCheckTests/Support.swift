import Foundation
import HarnessCheck

/// The repository's fixtures/ directory.
let fixturesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    url.deleteLastPathComponent()  // HarnessCheckTests
    url.deleteLastPathComponent()  // Tests
    return url.deletingLastPathComponent().appendingPathComponent("fixtures").path
}()

func fixture(_ name: String) -> String { fixturesDirectory + "/" + name }

/// A fresh empty directory under the system's temporary directory.
func makeTempDir(_ name: String) -> String {
    let base = NSTemporaryDirectory() + "harness-check-tests"
    try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
    var template = Array((base + "/\(name)-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(made != nil, "mkdtemp failed")
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

func result(_ results: [CheckResult], _ name: String) -> CheckResult {
    results.first { $0.name == name } ?? CheckResult(name: name, passed: false, evidence: ["no result named \(name)"])
}

/// Every file under `dir`, relative, sorted.
func files(under dir: String) -> [String] {
    (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? [])
        .filter { !isDir(dir + "/" + $0) }.sorted()
}

func isDir(_ path: String) -> Bool {
    var d: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &d) && d.boolValue
}

func bytes(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }
