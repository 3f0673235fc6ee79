/// A storage failure: damaged or unreadable data, a failed system call, or a call that
/// breaks the API's contract. Always names the file, and the byte offset where it matters.
public struct StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The bytes on disk are not what was written: bad checksum, bad magic, a gap, a
        /// truncated file. Never used; a person must look.
        case damaged
        /// A file in a format version newer than this build reads.
        case unsupportedVersion
        /// A system call failed (disk full, permissions...).
        case io
        /// The caller broke the contract (an append that leaves a gap, a truncation before
        /// the compaction point...). Nothing was written.
        case misuse
    }

    public var kind: Kind
    /// The file concerned (or directory).
    public var file: String
    /// Byte offset in `file` where the problem is, when there is one.
    public var offset: UInt64?
    public var detail: String

    public init(_ kind: Kind, file: String, offset: UInt64? = nil, _ detail: String) {
        self.kind = kind
        self.file = file
        self.offset = offset
        self.detail = detail
    }

    /// `FILE at byte N: detail`.
    public var description: String {
        var s = file
        if let offset { s += " at byte \(offset)" }
        return s + ": " + detail
    }
}
