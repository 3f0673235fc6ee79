import Foundation
import Testing

/// The package's root (three levels above this file).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The modules a target's sources import, from their `import` lines.
private func imports(of target: String) throws -> Set<String> {
    let dir = packageRoot.appendingPathComponent("Sources/\(target)").path
    var found: Set<String> = []
    let files = (FileManager.default.enumerator(atPath: dir)?.compactMap { $0 as? String } ?? []).filter { $0.hasSuffix(".swift") }
    #expect(!files.isEmpty, "no sources in \(dir)")
    for f in files {
        let text = try String(contentsOfFile: dir + "/" + f, encoding: .utf8)
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            if let i = words.firstIndex(of: "import"), i + 1 < words.count, words[..<i].allSatisfy({ $0.hasPrefix("@") || $0 == "public" }) {
                found.insert(String(words[i + 1]))
            }
        }
    }
    return found
}

/// The text of a target's declaration in Package.swift.
private func declaration(of target: String) throws -> String {
    let text = try String(contentsOfFile: packageRoot.appendingPathComponent("Package.swift").path, encoding: .utf8)
    guard let start = text.range(of: "name: \"\(target)\"") else { return "" }
    let rest = text[start.upperBound...]
    let end = ["\n        .target(", "\n        .executableTarget(", "\n        .testTarget(", "\n        .systemLibrary("].compactMap { rest.range(of: $0)?.lowerBound }.min() ?? rest.endIndex
    return String(rest[..<end])
}

@Suite("The module graph: where the decisions are, and what they may import")
struct ModuleGraphTests {
    @Test("The node's decisions import the protocol and the wire types, nothing else: no I/O, no clock, no NIO")
    func decisionsArePure() throws {
        let machine = try imports(of: "RaftNodeMachine")
        #expect(machine.subtracting(["Raft", "RaftNodeWire"]).isEmpty, "\(machine.sorted())")
        let core = try imports(of: "Raft")
        #expect(core.isEmpty, "\(core.sorted())")
    }

    @Test("The wire module, the engine (with the simulator) and the checker import no NIO, and depend on none", arguments: ["RaftNodeWire", "RaftNodeMachine", "Harness", "HarnessCheck", "RaftNodeKit"])
    func noNIO(target: String) throws {
        let nio = try imports(of: target).filter { $0.hasPrefix("NIO") }
        #expect(nio.isEmpty, "\(target) imports \(nio.sorted())")
        let decl = try declaration(of: target)
        #expect(!decl.isEmpty, "\(target) not found in Package.swift")
        #expect(!decl.contains("swift-nio"), "\(target) depends on swift-nio:\n\(decl)")
        #expect(!decl.contains("\"RaftNode\"") && !decl.contains("\"RaftTransport\""), "\(target) depends on the NIO shell:\n\(decl)")
    }

    @Test("The process runtime's loop decides nothing: it holds no pending requests, deadlines or proposals of its own")
    func loopIsThin() throws {
        let node = try String(contentsOfFile: packageRoot.appendingPathComponent("Sources/RaftNode/Node.swift").path, encoding: .utf8)
        for decision in ["pendingWrites", "pendingChanges", "pendingSnapshots", ".propose(", "proposeChange(", "requestSnapshot(", "core.step(", "core.tick("] {
            #expect(!node.contains(decision), "Node.swift still has \(decision)")
        }
        #expect(node.contains("NodeMachine"))
    }
}
