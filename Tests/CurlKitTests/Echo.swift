import CurlKit
import Foundation

/// Decoded `/echo` answer of the receiver.
struct Echo: Decodable {
    var method: String
    var path: String
    var headers: [[String]]
    var body_b64: String
    var connection: Int

    var body: [UInt8] { Array(Data(base64Encoded: body_b64) ?? Data()) }

    func header(_ name: String) -> String? {
        headers.first { $0.first?.lowercased() == name.lowercased() }?.last
    }

    init(_ response: HTTPResponse) throws {
        self = try JSONDecoder().decode(Echo.self, from: Data(response.body))
    }
}
