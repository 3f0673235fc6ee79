import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
    private func terminate(_ code: Int32) -> Never { Glibc.exit(code) }
#elseif canImport(Darwin)
    import Darwin
    private func terminate(_ code: Int32) -> Never { Darwin.exit(code) }
#endif

extension AsyncParsableCommand {
    /// Parses and runs the command like `main()`, but a bad flag or argument answers one
    /// line on stderr (`NAME: message`) and exit 2, never ArgumentParser's usage pages and
    /// its 64. `--help` and `--version` print as usual and exit 0; a command's own
    /// `ExitCode` is kept.
    public static func mainWithOneLineErrors(name: String) async -> Never {
        do {
            var command = try parseAsRoot()
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
            terminate(0)
        } catch let code as ExitCode {
            terminate(code.rawValue)  // the command's own verdict, already explained
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                terminate(0)
            }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? ""
            if !message.isEmpty { FileHandle.standardError.write(Data("\(name): \(message)\n".utf8)) }
            terminate(code == .validationFailure ? 2 : code.rawValue)
        }
    }
}
