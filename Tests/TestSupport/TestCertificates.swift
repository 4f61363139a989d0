import Foundation

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
