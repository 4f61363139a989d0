import BridgeCore
public import BridgeSettings
import ExecSink
import FileSink
import SMTPSink
import StdoutSink
import WebhookSink

/// The sink plugins compiled into this build. Adding a sink target means adding it here.
public enum SinkCatalog {
    public static let registry = SinkRegistry([
        StdoutSink.self,
        FileSink.self,
        WebhookSink.self,
        SMTPSink.self,
        ExecSink.self,
    ])
}
