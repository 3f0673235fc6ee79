/// A small seeded generator (SplitMix64). The core draws its election timeouts from one, so a
/// seed decides them; `RandomNumberGenerator` lets the standard library's `random(in:using:)` use it.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// True with probability `p` (0...1).
    public mutating func chance(_ p: Double) -> Bool {
        p > 0 && Double(next() >> 11) * 0x1.0p-53 < p
    }
}
