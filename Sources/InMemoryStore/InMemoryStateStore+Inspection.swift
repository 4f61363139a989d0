public import BridgeCore

extension InMemoryStateStore: StoreInspection {
    /// Always answers: memory cannot be unreadable.
    public func ping() async throws {}
}
