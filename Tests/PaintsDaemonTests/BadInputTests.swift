// Bad input: each gets an error reply with the right code, and the daemon keeps serving.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite(.serialized) struct BadInputTests {
    /// Sends raw frames, expects one error reply with `code`, then a working ping.
    func expectError(_ code: ErrorCode, frames: [Data], daemon: TestDaemon, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let client = try daemon.client()
        try client.sendRaw(frames)
        var reply = try #require(try client.receiveAny(timeout: 10), sourceLocation: sourceLocation)
        while reply.type == .accepted || reply.type == .progress {
            reply = try #require(try client.receiveAny(timeout: 10), sourceLocation: sourceLocation)
        }
        #expect(reply.type == .error, sourceLocation: sourceLocation)
        #expect(reply.protocolError?.code == code, "\(reply.header.serializedString())", sourceLocation: sourceLocation)
        ReplySchema.check(reply, sourceLocation: sourceLocation)
        #expect(try client.call(.ping, timeout: 5).result["pong"] == true, sourceLocation: sourceLocation)
    }

    func header(_ method: String, _ params: JSONValue, id: String = "bad") -> Data {
        JSONValue.object(["id": .string(id), "method": .string(method), "params": params]).serialized()
    }

    @Test func malformedMessages() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        try expectError(.parseError, frames: [Data("{not json".utf8)], daemon: daemon)
        try expectError(.parseError, frames: [Data([0xFF, 0xFE, 0x00])], daemon: daemon)
        try expectError(.invalidRequest, frames: [Data("[1,2,3]".utf8)], daemon: daemon)
        try expectError(.invalidRequest, frames: [Data(#"{"method":"ping"}"#.utf8)], daemon: daemon)
        try expectError(.invalidRequest, frames: [Data(#"{"id":"x"}"#.utf8)], daemon: daemon)
        try expectError(.unknownMethod, frames: [Data(#"{"id":"x","method":"paint.everything"}"#.utf8)], daemon: daemon)
        try expectError(.invalidParams, frames: [header("ping", ["extra": true])], daemon: daemon)
    }

    @Test func wrongParams() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let sketch = try Repository.data("Examples/art/blocks-lineart.png")
        let ref: JSONValue = ["frame": 1, "encoding": "png"]
        try expectError(.invalidParams, frames: [header("colorize", ["sketch": ref, "seed": "seven"]), sketch], daemon: daemon)
        try expectError(.invalidParams, frames: [header("colorize", ["sketch": "sketch.png"]), sketch], daemon: daemon)
        try expectError(.invalidParams, frames: [header("colorize", ["sketch": ref, "options": ["gap_closing": 100]]), sketch],
                        daemon: daemon)
        try expectError(.invalidParams, frames: [header("undo.preview", ["image": ref, "steps": [5000]]), sketch], daemon: daemon)
        try expectError(.invalidParams, frames: [header("jobs.status", ["job": 12])], daemon: daemon)
        try expectError(.unsupportedEngine, frames: [header("colorize", ["sketch": ref, "engine": "sdxl-turbo"]), sketch],
                        daemon: daemon)
    }

    @Test func badImages() throws {
        let daemon = try TestDaemon { $0.maxPixels = 4_000_000 }
        defer { daemon.stop() }
        let sketch = try Repository.data("Examples/art/blocks-lineart.png")
        let hints = try Repository.data("Examples/art/umbrella-hints.png")
        let png: JSONValue = ["frame": 1, "encoding": "png"]
        // A frame index past the message's frames.
        try expectError(.frameOutOfRange, frames: [header("colorize", ["sketch": ["frame": 3, "encoding": "png"]]), sketch],
                        daemon: daemon)
        // Raw pixels of the wrong byte count.
        try expectError(.imageDecodeFailed,
                        frames: [header("colorize", ["sketch": ["frame": 1, "encoding": "rgba8", "width": 10, "height": 10]]),
                                 Data(count: 399)], daemon: daemon)
        // Not a PNG; a PNG whose pixel data is corrupt.
        try expectError(.imageDecodeFailed, frames: [header("colorize", ["sketch": png]), Data("GIF89a....".utf8)], daemon: daemon)
        var corrupt = sketch
        for i in stride(from: sketch.count / 3, to: sketch.count - 16, by: 5) { corrupt[i] ^= 0xA5 }
        try expectError(.imageDecodeFailed, frames: [header("colorize", ["sketch": png]), corrupt], daemon: daemon)
        // A header declaring 100000x100000 pixels: refused before any decoding.
        try expectError(.imageTooLarge,
                        frames: [header("colorize", ["sketch": png]), PNGFixtures.headerOnly(width: 100_000, height: 100_000)],
                        daemon: daemon)
        // Sketch and hints of different sizes.
        try expectError(.imageSizeMismatch,
                        frames: [header("colorize", ["sketch": png, "hints": ["frame": 2, "encoding": "png"]]), sketch, hints]
                            .enumerated().map { $0.offset == 2 ? (try? PNGCodec.encode(RGBAImage(width: 7, height: 9))) ?? hints : $0.element },
                        daemon: daemon)
        // A path outside the allowed directories (none are allowed here).
        try expectError(.pathNotAllowed, frames: [header("colorize", ["sketch": ["path": "/etc/passwd"]])], daemon: daemon)
    }

    @Test func oversizedMessage() throws {
        let daemon = try TestDaemon { $0.maxMessageBytes = 100_000 }
        defer { daemon.stop() }
        try expectError(.messageTooLarge,
                        frames: [header("colorize", ["sketch": ["frame": 1, "encoding": "png"]]), Data(count: 150_000)],
                        daemon: daemon)
    }

    @Test func everyBadRequestStillLeavesOthersServed() throws {
        // A client that sends garbage does not disturb another client's job.
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let good = try daemon.client()
        try good.send(Request(id: "good", method: .colorize, params: ["sketch": ["frame": 1, "encoding": "png"]],
                              frames: [Data(), try Repository.data("Examples/art/umbrella-lineart.png")]))
        let bad = try daemon.client()
        for _ in 0..<20 { try bad.sendRaw([Data("garbage".utf8)]) }
        for _ in 0..<20 { #expect(try bad.receiveAny(timeout: 5)?.protocolError?.code == .parseError) }
        var reply = try #require(try good.receive(for: "good", timeout: 30))
        while reply.type != .result && reply.type != .error { reply = try #require(try good.receive(for: "good", timeout: 30)) }
        #expect(reply.type == .result)
    }
}
