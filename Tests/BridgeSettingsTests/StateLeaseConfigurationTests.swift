import BridgeSettings
import Testing

/// `state.lease`: how long a replica that died keeps its claims before another takes them.
@Suite("bridge.yaml state.lease")
struct StateLeaseConfigurationTests {
    @Test("30 s unless given; a given lease is read")
    func readOrDefault() throws {
        #expect(try ConfigurationTests.load(ConfigurationTests.minimal).get().state.lease == .seconds(30))
        #expect(try ConfigurationTests.load(StateURLConfigurationTests.yaml("lease: 10s")).get().state.lease == .seconds(10))
        #expect(try ConfigurationTests.load(StateURLConfigurationTests.yaml("lease: 3s")).get().state.lease == .seconds(3))
    }

    @Test("a lease under 3 s is an error at its value", arguments: ["lease: 2s", "lease: 2999ms", "lease: 0s"])
    func tooShort(line: String) {
        #expect(
            ConfigurationTests.errors(StateURLConfigurationTests.yaml(line))
                == ["bridge.yaml:11:10: state.lease must be at least 3s (it is renewed every third of it)"])
    }
}
