import Foundation
import Testing

@testable import SinkAPI

@Suite("Event ids")
struct EventIDTests {
    @Test("an id's text is the UUID's lowercase text, for random bytes and the edges")
    func textIsUUIDText() {
        var generator = SystemRandomNumberGenerator()
        var samples = (0..<1000).map { _ in (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        samples.append(Array(repeating: 0, count: 16))
        samples.append(Array(repeating: 0xFF, count: 16))
        for bytes in samples {
            let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                                   bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
            #expect(EventID.text(bytes) == uuid.uuidString.lowercased())
        }
    }

    @Test("ids are version 7, sort by their millisecond, and parse as UUIDs")
    func version7() throws {
        let earlier = EventID.make(at: Date(timeIntervalSince1970: 1_700_000_000))
        let later = EventID.make(at: Date(timeIntervalSince1970: 1_700_000_000.001))
        #expect(earlier < later)
        let uuid = try #require(UUID(uuidString: later))
        #expect(uuid.uuidString.lowercased() == later)
        #expect(Array(later)[14] == "7")
    }
}
