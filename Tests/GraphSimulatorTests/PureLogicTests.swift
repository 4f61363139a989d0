import Foundation
import Testing
import _CryptoExtras

@testable import GraphSimulator

/// The simulator's pure parts, without I/O.
@Suite("simulator pure logic")
struct PureLogicTests {
    @Test("Graph's date formats and a lenient ISO 8601 reader")
    func dates() throws {
        let date = try #require(GraphDate.parse("2016-11-20T18:23:45.9356913Z"))
        #expect(GraphDate.subscriptionFormat(date) == "2016-11-20T18:23:45.9356913Z")
        #expect(GraphDate.secondsFormat(date) == "2016-11-20T18:23:45Z")
        #expect(GraphDate.innerErrorFormat(date) == "2016-11-20T18:23:45")
        #expect(GraphDate.identityTimestamp(date) == "2016-11-20 18:23:45Z")
        #expect(GraphDate.parse("2016-11-20T20:23:45+02:00") == GraphDate.parse("2016-11-20T18:23:45Z"))
        #expect(GraphDate.parse("2016-11-20T18:23:45") == GraphDate.parse("2016-11-20T18:23:45Z"), "no zone: UTC")
        #expect(GraphDate.parse("2024-02-29T00:00:00Z")?.timeIntervalSince1970 == 1_709_164_800)
        #expect(GraphDate.parse("1970-01-01T00:00:00.000Z")?.timeIntervalSince1970 == 0)
        for bad in ["", "2016-11-20", "2016-13-01T00:00:00Z", "2016-11-20T18:23:45X", "2016-11-20T18:23:45.Z", "tomorrow"] {
            #expect(GraphDate.parse(bad) == nil, "\(bad)")
        }
    }

    @Test("resource paths: mailFolders('Inbox') reads as mailfolders/inbox, case and leading slash ignored, $select kept")
    func resourcePaths() {
        let inbox = ResourcePath("/Users/Alice@Contoso.com/mailFolders('Inbox')/messages?$select=Subject,From")
        #expect(inbox.segments == ["users", "alice@contoso.com", "mailfolders", "inbox", "messages"])
        #expect(inbox.messageCollection?.target == .user("alice@contoso.com"))
        #expect(inbox.messageCollection?.folder == "inbox")
        #expect(inbox.selectedProperties == ["subject", "from"])
        #expect(inbox.kind == .outlook)
        #expect(ResourcePath("me/messages").messageCollection?.target == .me)
        #expect(ResourcePath("me/messages").messageCollection?.folder == nil)
        #expect(ResourcePath("users/x/events").messageCollection == nil)
        #expect(ResourcePath("users").kind == .directory)
        #expect(ResourcePath("groups/1/conversations").kind == .groupConversation)
        #expect(ResourcePath("drives/b!x/root").kind == .drive)
        #expect(ResourcePath("me/drive/root").kind == .drive)
        #expect(ResourcePath("teams/getAllMessages").kind == .teams)
        #expect(ResourcePath("communications/callRecords").kind == .callRecord)
        #expect(ResourcePath("communications/presences?$filter=id in ('1')").kind == .presence)
        #expect(ResourcePath("security/alerts?$filter=status eq 'New'").kind == .securityAlert)
        #expect(ResourcePath("planets/mars").kind == .unsupported)
        #expect(ResourceKind.outlook.maximumMinutes(includeResourceData: false) == 4230)
        #expect(ResourceKind.outlook.maximumMinutes(includeResourceData: true) == 1440)
        #expect(ResourceKind.directory.maximumMinutes(includeResourceData: false) == 41_760)
    }

    @Test("JSON keeps member order, escapes control characters and parses what it writes")
    func json() throws {
        let value: JSONValue = .object(["b": 1, "a": .array(["x\n\"y\u{01}", true, .null]), "c": .double(1.5)])
        let text = value.serialized()
        #expect(text == #"{"b":1,"a":["x\n\"y\u0001",true,null],"c":1.5}"#)
        #expect(JSONValue.parse(text) == value)
        #expect(JSONValue.parse(#"{"k":"\ud83d\ude00 é"}"#)?["k"] == "😀 é")
        #expect(JSONValue.parse("{\"a\":1} x") == nil)
        #expect(JSONValue.parse("[1,]") == nil)
        #expect(JSONValue.parse("{\"a\":-0.5e2}")?["a"] == .double(-50))
    }

    @Test("form encoding: + and %20 are spaces on the way in; only unreserved characters stay bare on the way out")
    func forms() {
        let pairs = FormEncoding.decode("a=1+2&b=x%20y%3Az&c&d=%E2%9C%93")
        #expect(pairs.map(\.name) == ["a", "b", "c", "d"])
        #expect(pairs.map(\.value) == ["1 2", "x y:z", "", "✓"])
        #expect(FormEncoding.escape("Validation: a b/c+d~") == "Validation%3A%20a%20b%2Fc%2Bd~")
    }

    @Test("a generated self-signed certificate parses back to the same public key and thumbprints")
    func selfSignedCertificate() throws {
        let generated = try SelfSignedCertificate.generate(commonName: "round-trip")
        let parsed = try RegisteredCertificate(pem: generated.certificatePEM)
        let key = try _RSA.Signing.PrivateKey(pemRepresentation: generated.privateKeyPEM)
        #expect(parsed.publicKey.derRepresentation == key.publicKey.derRepresentation)
        #expect(Identifiers.hex(parsed.sha256) == generated.sha256Thumbprint)
        #expect(Base64URL.encode(parsed.sha1) == generated.x5t)
        #expect(generated.sha1Thumbprint.count == 40)
        // The certificate's own signature verifies with its key (it really is self-signed).
        let certificate = try #require(try DER.parse(generated.derRepresentation[...]).first).children()
        #expect(certificate.count == 3)
        let signature = Array(certificate[2].contents.dropFirst())
        #expect(key.publicKey.isValidSignature(.init(rawRepresentation: signature), for: Array(certificate[0].encoded), padding: .insecurePKCS1v1_5))
        #expect(throws: CertificateError.self) { try RegisteredCertificate(pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n") }
    }

    @Test(
        "with the shared synthetic signing key, validationTokens verify against the shared JWKS",
        .enabled(if: sharedVectors("validation-token-synthetic/jwks.json") != nil, "needs ../shared/graph-vectors beside the checkout"))
    func sharedSyntheticKey() throws {
        let pem = try #require(sharedVectors("validation-token-synthetic/signing-key.pem"))
        let jwks = try #require(sharedVectors("validation-token-synthetic/jwks.json").flatMap { JSONValue.parse($0) })
        let key = try #require(jwks["keys"]?.arrayValue?.first)
        var configuration = GraphSimulator.Configuration()
        configuration.signingKeyPEM = String(decoding: pem, as: UTF8.self)
        configuration.signingKeyID = try #require(key["kid"]?.stringValue)
        let simulator = try GraphSimulator(configuration: configuration)
        let token = try simulator.makeValidationToken()
        let parts = token.split(separator: ".").map(String.init)
        let publicKey = try _RSA.Signing.PublicKey(
            n: try #require(Base64URL.decode(key["n"]?.stringValue ?? "")), e: try #require(Base64URL.decode(key["e"]?.stringValue ?? "")))
        let signature = _RSA.Signing.RSASignature(rawRepresentation: try #require(Base64URL.decode(parts[2])))
        #expect(publicKey.isValidSignature(signature, for: Array((parts[0] + "." + parts[1]).utf8), padding: .insecurePKCS1v1_5))
        let header = try #require(Base64URL.decode(parts[0]).flatMap { JSONValue.parse($0) })
        #expect(header["kid"] == key["kid"])
        // The served JWKS publishes the same modulus.
        #expect(simulator.jwks()["keys"]?.arrayValue?.first?["n"] == key["n"])
    }
}

/// A file under `../shared/graph-vectors/` beside the checkout, or nil when absent.
func sharedVectors(_ relative: String) -> [UInt8]? {
    let root = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let path = root.deletingLastPathComponent().appendingPathComponent("shared/graph-vectors/\(relative)").path
    return FileManager.default.contents(atPath: path).map { Array($0) }
}
