/// One entry of `sinks:`, decoded and ready to build.
public struct ConfiguredSink: Sendable {
    public var name: String
    public var type: String
    public var retry: RetryPolicy
    public var concurrency: Int
    public var factory: SinkFactory

    public init(name: String, type: String, retry: RetryPolicy, concurrency: Int, factory: SinkFactory) {
        self.name = name
        self.type = type
        self.retry = retry
        self.concurrency = concurrency
        self.factory = factory
    }
}

/// Builds a sink instance from an already decoded, valid configuration.
public struct SinkFactory: Sendable {
    public let defaultConcurrency: Int
    private let make: @Sendable (SinkContext) throws -> any Sink

    public init(defaultConcurrency: Int, make: @escaping @Sendable (SinkContext) throws -> any Sink) {
        self.defaultConcurrency = defaultConcurrency
        self.make = make
    }

    public func makeSink(context: SinkContext) throws -> any Sink { try make(context) }
}
