import SinkAPI
import Testing

/// The sink worker's retry jitter comes from a SplitMix64 generator of its own, not the system's
/// (the tests' mutations use the same generator, with fixed seeds).
@Suite("Retry jitter generator")
struct JitterTests {
    @Test("it is SplitMix64: the reference outputs for seed 0")
    func referenceOutputs() {
        var jitter = SplitMix64(seed: 0)
        #expect((0..<3).map { _ in jitter.next() } == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    }

    @Test("its doubles spread over 0..<1, and two workers seeded apart draw apart")
    func spread() {
        var first = SplitMix64(seed: .random(in: .min ... .max))
        var second = SplitMix64(seed: .random(in: .min ... .max))
        let draws = (0..<1000).map { _ in Double.random(in: 0..<1, using: &first) }
        #expect(draws.allSatisfy { (0..<1).contains($0) })
        // Ten buckets of a thousand uniform draws: each holds some (a constant or stuck generator fails).
        let buckets = Set(draws.map { Int($0 * 10) })
        #expect(buckets.count == 10)
        #expect((0..<8).map { _ in first.next() } != (0..<8).map { _ in second.next() })
    }
}
