import Foundation
import GraphClient
import Synchronization

/// Whether the bridge can sign in to Graph, for `/readyz` and `/healthz`: the last sign-in's
/// failure, cleared by the next success. One for the process (a reload's new Graph client reports
/// to it too).
final class SignInStatus: Sendable {
    private let failure = Mutex<String?>(nil)

    /// Why the last sign-in failed; nil when it worked (or none was needed yet).
    var lastFailure: String? { failure.withLock { $0 } }

    func succeeded() { failure.withLock { $0 = nil } }

    func failed(_ error: any Error) { failure.withLock { $0 = "\(error)" } }
}

/// An access-token provider that tells a ``SignInStatus`` how each sign-in went. A cancelled
/// request (the bridge stopping) is neither.
struct ReportingTokenProvider: AccessTokenProvider {
    let base: any AccessTokenProvider
    let status: SignInStatus

    func accessToken() async throws -> String {
        do {
            let token = try await base.accessToken()
            status.succeeded()
            return token
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if !Task.isCancelled { status.failed(error) }
            throw error
        }
    }

    func invalidate() async { await base.invalidate() }
}
