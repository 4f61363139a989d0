public import Foundation

/// A fresh folder under the temporary directory, removed with the object.
public final class ScratchFolder: Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(prefix: String = "graph-bridge-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the folder.
    public func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Makes a throwaway self-signed certificate for `127.0.0.1` (and `localhost`) with the
/// `openssl` command line; returns the paths of the PEM certificate and its key.
public func makeSelfSignedCertificate(in folder: String, name: String) async throws -> (cert: String, key: String) {
    let cert = "\(folder)/\(name).pem"
    let key = "\(folder)/\(name)-key.pem"
    try await runCommand([
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ])
    return (cert, key)
}
