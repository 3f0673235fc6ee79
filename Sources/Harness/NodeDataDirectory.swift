import Foundation

/// A node's data directory in a run, as both worlds treat it.
public enum NodeDataDirectory {
    /// What `wipe` keeps: the node's own account of what it did (events.jsonl, node.log)
    /// and stderr, which the checker and a reader still need.
    public static let kept: Set<String> = ["events.jsonl", "node.log", "stderr"]

    /// Deletes everything in `dir` but what `kept` names.
    public static func wipe(_ dir: String) throws {
        for entry in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() where !kept.contains(entry) {
            do {
                try FileManager.default.removeItem(atPath: dir + "/" + entry)
            } catch {
                throw WipeError(description: "cannot wipe \(dir)/\(entry): \(error.localizedDescription)")
            }
        }
    }

    public struct WipeError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }
}
