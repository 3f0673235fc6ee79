/// The log as the core sees it: the entries after a compaction point (`prevIndex`,
/// `prevTerm`), all of them durable or about to be made durable by the shell.
///
/// Entries up to `prevIndex` are covered by a snapshot. With trailing entries kept after a
/// snapshot, `prevIndex` may be below the latest snapshot's index.
public struct RaftLog: Sendable, Hashable {
    public private(set) var prevIndex: LogIndex
    public private(set) var prevTerm: Term
    public private(set) var entries: [Entry]

    public init(prevIndex: LogIndex = 0, prevTerm: Term = 0, entries: [Entry] = []) {
        self.prevIndex = prevIndex
        self.prevTerm = prevTerm
        self.entries = []
        append(entries)
    }

    public var firstIndex: LogIndex { prevIndex + 1 }
    public var lastIndex: LogIndex { prevIndex + LogIndex(entries.count) }
    public var lastTerm: Term { entries.last?.term ?? prevTerm }

    /// The term of the entry at `index`, `prevTerm` at `prevIndex`, nil where unknown
    /// (compacted away or beyond the end).
    public func term(at index: LogIndex) -> Term? {
        if index == prevIndex { return prevTerm }
        guard index > prevIndex, index <= lastIndex else { return nil }
        return entries[Int(index - prevIndex - 1)].term
    }

    public func entry(at index: LogIndex) -> Entry? {
        guard index > prevIndex, index <= lastIndex else { return nil }
        return entries[Int(index - prevIndex - 1)]
    }

    /// Payload bytes of the entries from `from` through `through` that this log holds.
    public func bytes(from: LogIndex, through: LogIndex) -> Int {
        let lo = max(from, firstIndex), hi = min(through, lastIndex)
        guard lo <= hi else { return 0 }
        var total = 0
        for i in Int(lo - firstIndex)...Int(hi - firstIndex) { total += entries[i].payload.count }
        return total
    }

    /// Entries from `index` on, at most `maxCount` of them and about `maxBytes` of payload
    /// (always at least one when there is one).
    public func entries(from index: LogIndex, maxCount: Int, maxBytes: Int = .max) -> [Entry] {
        guard index > prevIndex, index <= lastIndex else { return [] }
        let start = Int(index - prevIndex - 1)
        let end = min(entries.count, start + maxCount)
        var bytes = 0
        var out: [Entry] = []
        for i in start..<end {
            bytes += entries[i].payload.count
            if !out.isEmpty && bytes > maxBytes { break }
            out.append(entries[i])
        }
        return out
    }

    /// Whether a log ending at (`lastIndex`, `lastTerm`) is at least as up-to-date as this one:
    /// a later last term wins, and with equal last terms the longer log (Raft paper 5.4.1).
    public func isUpToDate(lastIndex: LogIndex, lastTerm: Term) -> Bool {
        lastTerm > self.lastTerm || (lastTerm == self.lastTerm && lastIndex >= self.lastIndex)
    }

    /// The first index of the run of entries with the term of the entry at `index` (not
    /// below `firstIndex`): where a leader should look next after a conflict there.
    public func firstIndexOfTerm(at index: LogIndex) -> LogIndex {
        guard let t = term(at: index), index > prevIndex else { return index }
        var i = index
        while i > firstIndex, term(at: i - 1) == t { i -= 1 }
        return i
    }

    /// The last index whose entry has term `term`, if the log holds one.
    public func lastIndex(ofTerm term: Term) -> LogIndex? {
        var i = lastIndex
        while i > prevIndex {
            let t = entries[Int(i - prevIndex - 1)].term
            if t == term { return i }
            if t < term { return nil }
            i -= 1
        }
        return nil
    }

    /// Appends entries that continue the log (the first one's index is `lastIndex + 1`).
    public mutating func append(_ new: [Entry]) {
        for e in new {
            precondition(e.index == lastIndex + 1, "append of \(e.index) after \(lastIndex)")
            entries.append(e)
        }
    }

    /// Removes the entries from `index` on.
    public mutating func truncate(from index: LogIndex) {
        guard index <= lastIndex else { return }
        precondition(index > prevIndex, "truncate from \(index) at or before the compaction point \(prevIndex)")
        entries.removeLast(Int(lastIndex - index + 1))
    }

    /// Forgets the entries up to `index`, whose term is `term`. Past the end, the log becomes
    /// empty after `index`.
    public mutating func compact(through index: LogIndex, term: Term) {
        guard index > prevIndex else { return }
        if index >= lastIndex {
            entries.removeAll()
        } else {
            entries.removeFirst(Int(index - prevIndex))
        }
        prevIndex = index
        prevTerm = term
    }
}
