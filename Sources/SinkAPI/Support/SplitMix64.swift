/// SplitMix64 (Steele, Lea and Flood 2014): a small, fast, seeded random number generator. For
/// numbers that need no secrecy: the sink worker's retry jitter (the system generator costs a
/// `getrandom(2)` per number) and the tests' mutations (a failure's seed reproduces its input
/// exactly, on any machine).
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
