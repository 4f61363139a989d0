// The engine's API is written in the sink API's vocabulary (BridgeEvent, JSONValue, Sink,
// SinkContext): whoever drives the engine gets it with `import BridgeCore`.
@_exported public import SinkAPI
