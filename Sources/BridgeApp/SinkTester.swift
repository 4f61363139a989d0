public import BridgeCore
public import BridgeSettings
import CurlKit
import Foundation
public import Logging
import ServiceLifecycle

/// `graph-bridge sinks test NAME`: one sample event through one configured sink, for real.
public enum SinkTester {
    public struct Outcome: Sendable {
        public var succeeded: Bool
        public var line: String
    }

    /// A realistic new-mail event, with `data` as `fetch:` would fill it.
    public static func sampleEvent(subscription: String) -> BridgeEvent {
        let messageID = "AAMkAGI2TG93AAA="
        let resource = "Users/622eaaff-0683-4862-9de4-f2ec83c2bd98/Messages/\(messageID)"
        return BridgeEvent(
            id: EventID.make(),
            receivedAt: Date(),
            subscription: SubscriptionReference(name: subscription, id: "00000000-0000-0000-0000-000000000000", resource: "users/alice@contoso.com/mailFolders('Inbox')/messages"),
            changeType: "created",
            resource: resource,
            resourceData: .object(["@odata.type": "#Microsoft.Graph.Message", "@odata.id": .string(resource), "@odata.etag": "W/\"CQAAABYAAAA\"", "id": .string(messageID)]),
            tenantId: "84bd8158-6d4d-4958-8b9f-9d6445542f95",
            data: .object([
                "subject": "graph-bridge sink test: \"quotes\", <angle> & ünïcødé",
                "from": .object(["emailAddress": .object(["name": "graph-bridge", "address": "graph-bridge@example.invalid"])]),
                "receivedDateTime": .string(Timestamp.format(Date())),
                "importance": "normal",
                "webLink": "https://outlook.office365.com/owa/?ItemID=AAMkAGI2TG93AAA%3D",
            ])
        )
    }

    public static func run(configuration: BridgeConfiguration, sinkName: String, logger: Logger) async -> Outcome {
        guard let configured = configuration.sinks.first(where: { $0.name == sinkName }) else {
            let known = configuration.sinks.map(\.name).joined(separator: ", ")
            return Outcome(succeeded: false, line: "no sink named '\(sinkName)' in \(configuration.file) (sinks: \(known.isEmpty ? "none" : known))")
        }
        let http = CurlClient()
        var sinkLogger = logger
        sinkLogger[metadataKey: "bridge.sink"] = "\(sinkName)"
        let sink: any Sink
        do {
            sink = try configured.factory.makeSink(context: SinkContext(logger: sinkLogger, transport: http))
        } catch {
            await http.shutdown()
            return Outcome(succeeded: false, line: "sink \(sinkName) (\(configured.type)) could not start: \(error)")
        }
        let event = sampleEvent(subscription: configuration.subscriptions.first?.name ?? "sample")
        let outcome: Outcome
        if let service = sink as? any Service {
            // A sink with its own life (an exec plugin) runs while it delivers.
            let group = ServiceGroup(configuration: .init(services: [.init(service: service)], logger: logger))
            outcome = await withTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try? await group.run() }
                let outcome = await deliver(event, to: sink, name: sinkName, type: configured.type)
                await group.triggerGracefulShutdown()
                await tasks.waitForAll()
                return outcome
            }
        } else {
            outcome = await deliver(event, to: sink, name: sinkName, type: configured.type)
        }
        await http.shutdown()
        return outcome
    }

    static func deliver(_ event: BridgeEvent, to sink: any Sink, name: String, type: String) async -> Outcome {
        let started = ContinuousClock.now
        do {
            try await sink.deliver(event, attempt: DeliveryAttempt(number: 1, deliveryID: 0))
            return Outcome(succeeded: true, line: "sink \(name) (\(type)): delivered in \(milliseconds(since: started)) ms (event \(event.id))")
        } catch let error as SinkError {
            let kind: String
            switch error.disposition {
            case .permanent: kind = "permanent failure: the bridge would keep it as a dead letter"
            case .retry(let after): kind = "failed: the bridge would retry" + (after.map { " after \(Int($0.seconds)) s" } ?? "")
            }
            return Outcome(succeeded: false, line: "sink \(name) (\(type)): \(kind), after \(milliseconds(since: started)) ms: \(error.message)")
        } catch {
            return Outcome(succeeded: false, line: "sink \(name) (\(type)): failed, the bridge would retry, after \(milliseconds(since: started)) ms: \(error)")
        }
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int {
        Int(((ContinuousClock.now - start).seconds * 1000).rounded())
    }
}
