public import BridgeCore

// `ping`, `recentEvents` and `eventCount` are SQLiteStateStore's own; the status page reads them
// through the protocol, whichever store runs.
extension SQLiteStateStore: StoreInspection {}
