#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The few POSIX calls the transport makes on socket files.
enum FileSystem {
    enum Kind: Equatable {
        case missing, socket, other
    }

    struct Failure: Error, CustomStringConvertible {
        var call: String
        var errno: Int32
        var description: String { "\(call): \(String(cString: strerror(errno)))" }
    }

    /// What is at `path`, without following a symbolic link.
    static func kind(of path: String) -> Kind {
        var info = stat()
        guard lstat(path, &info) == 0 else { return .missing }
        return (info.st_mode & S_IFMT) == S_IFSOCK ? .socket : .other
    }

    static func remove(_ path: String) {
        _ = unlink(path)
    }

    /// Mode 0600: only the owner may connect.
    static func restrictToOwner(_ path: String) throws(Failure) {
        guard chmod(path, 0o600) == 0 else { throw Failure(call: "chmod \(path)", errno: errno) }
    }

    /// The permission bits of `path`, or nil.
    static func mode(of path: String) -> UInt32? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return UInt32(info.st_mode) & 0o7777
    }
}
