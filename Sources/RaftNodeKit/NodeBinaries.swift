import Foundation

/// Where a built product of this package is (`raft-node`, `harness`): beside the running
/// executable or test bundle (what `swift build` and `swift build --build-tests` build), else
/// in the build directories of the package at `packageRoot`.
public enum NodeBinaries {
    public static func locate(_ product: String, packageRoot: URL? = nil, buildDirectories: [String] = [".build"]) -> String? {
        var dirs: [URL] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        if let first = CommandLine.arguments.first {
            dirs.append(URL(fileURLWithPath: first).deletingLastPathComponent())
        }
        var bundle = Bundle.main.bundleURL
        for _ in 0..<4 {
            dirs.append(bundle)
            bundle.deleteLastPathComponent()
        }
        if let packageRoot {
            for build in buildDirectories { dirs.append(packageRoot.appendingPathComponent(build).appendingPathComponent("debug")) }
        }
        return dirs.map { $0.appendingPathComponent(product).path }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A program of the machine (`etcd`, `chromium`): the first executable `name` in the
    /// directories of PATH, then in `alsoIn`.
    public static func onPath(_ name: String, alsoIn: [String] = []) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":").map(String.init) + alsoIn {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
