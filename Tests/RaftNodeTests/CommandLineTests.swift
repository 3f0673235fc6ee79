import Foundation
import Testing

// raft-node's command line: a bad flag is one clear line on stderr and exit 2 (a usage
// error), never ArgumentParser's usage pages; --help documents every setting.

private func runNode(_ arguments: [String]) throws -> (code: Int32, stdout: String, stderr: String) {
    let binary = try #require(raftNodePath(), "raft-node is not built: run swift build --build-tests")
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary)
    p.arguments = arguments
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@Suite("raft-node command line")
struct CommandLineTests {
    @Test(
        "a bad flag gets one line naming it and exit 2",
        arguments: [
            (["--data-dir", "/tmp/x"], "--name"),
            (["--name"], "--name"),
            (["--name", "n1", "--data-dir", "/tmp/x", "--bogus"], "--bogus"),
            (["--name", "N 1", "--data-dir", "/tmp/x"], "--name"),
            (["--name", "n1", "--data-dir", "/tmp/x", "--heartbeat", "zz"], "--heartbeat"),
            (["--name", "n1", "--data-dir", "/tmp/x", "--snapshot-chunk", "-1"], "--snapshot-chunk"),
            (["--name", "n1", "--data-dir", "/tmp/x", "--snapshot-threshold", "ten"], "--snapshot-threshold"),
            (["--name", "n1", "--data-dir", "/tmp/x", "--member", "n1"], "--member"),
            (["--name", "n1", "--data-dir", "/tmp/x", "--heartbeat", "200ms"], "--heartbeat"),
        ])
    func badFlag(arguments: [String], names flag: String) throws {
        let r = try runNode(arguments)
        #expect(r.code == 2)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(r.stderr)")
        #expect(lines.first?.hasPrefix("raft-node: ") == true)
        #expect(lines.first?.contains(flag) == true, "stderr: \(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    @Test("--help documents every setting of SPEC section 2 and exits 0")
    func help() throws {
        let r = try runNode(["--help"])
        #expect(r.code == 0)
        for flag in [
            "--name", "--data-dir", "--listen", "--client", "--member", "--join", "--election-timeout", "--heartbeat",
            "--snapshot-threshold", "--snapshot-trailing", "--snapshot-chunk", "--max-entries-per-request",
        ] {
            #expect(r.stdout.contains(flag), "--help lacks \(flag)")
        }
    }
}
