// Bad input: each gets an error reply with the right code, and the daemon keeps serving.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite(.serialized) struct BadInputTests {
    /// Sends raw frames, expects one error reply with `code`, then a working ping. Returns the error.
    @discardableResult
    func expectError(_ code: ErrorCode, frames: [Data], daemon: TestDaemon, sourceLocation: SourceLocation = #_sourceLocation) throws
        -> ProtocolError? {
        let client = try daemon.client()
        try client.sendRaw(frames)
        var reply = try #require(try client.receiveAny(timeout: 60), sourceLocation: sourceLocation)
        while reply.type == .accepted || reply.type == .progress {
            reply = try #require(try client.receiveAny(timeout: 60), sourceLocation: sourceLocation)
        }
        #expect(reply.type == .error, sourceLocation: sourceLocation)
        #expect(reply.protocolError?.code == code, "\(reply.header.serializedString())", sourceLocation: sourceLocation)
        ReplySchema.check(reply, sourceLocation: sourceLocation)
        #expect(try client.call(.ping, timeout: 60).result["pong"] == true, sourceLocation: sourceLocation)
        return reply.protocolError
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

    @Test func strictJSONHeaders() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        // Each of these was answered (or misreported) by the Foundation decoder.
        let comma = try expectError(.parseError, frames: [Data(#"{"id":"a","method":"ping",}"#.utf8)], daemon: daemon)
        #expect(comma?.message == "frame 0 is not valid JSON: trailing comma before '}' at byte 25")
        let duplicate = try expectError(.parseError, frames: [Data(#"{"id":"a","method":"ping","method":"shutdown"}"#.utf8)],
                                        daemon: daemon)
        #expect(duplicate?.message.contains(#"duplicate key "method""#) == true)
        let range = try expectError(.parseError, frames: [Data(#"{"id":"a","method":"ping","params":{"x":1e400}}"#.utf8)], daemon: daemon)
        #expect(range?.message.contains("number out of range") == true)
        try expectError(.parseError, frames: [Data([0xEF, 0xBB, 0xBF] + Array(#"{"id":"a","method":"ping"}"#.utf8))], daemon: daemon)
        let utf16 = #"{"id":"a","method":"ping"}"#.utf16.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        try expectError(.parseError, frames: [Data([0xFF, 0xFE] + utf16)], daemon: daemon)
        // A 10,000-deep header is refused where level 65 opens, and the daemon goes on answering (expectError pings).
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let nested = try expectError(.parseError, frames: [Data((#"{"id":"a","method":"ping","params":{"x":"# + deep + "}}").utf8)],
                                     daemon: daemon)
        #expect(nested?.message.contains("nested deeper than 64") == true)
        // [0e1] is valid JSON (the decoder refused it): this header gets past parsing to params checking.
        try expectError(.invalidParams, frames: [Data(#"{"id":"a","method":"ping","params":{"x":[0e1]}}"#.utf8)], daemon: daemon)
    }

    @Test func sizeLimitsAndUnusedFrames() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let sketch = try Repository.data("Examples/art/blocks-lineart.png")
        let ref: JSONValue = ["frame": 1, "encoding": "png"]
        func colorize(_ extra: [String: JSONValue]) -> Data {
            header("colorize", .object(extra.merging(["sketch": ref]) { own, _ in own }))
        }
        // A 1 MB prompt (under the 1 MiB header limit) is over the 64 KiB prompt limit.
        let prompt = try expectError(.invalidParams, frames: [colorize(["prompt": .string(String(repeating: "p", count: 1_000_000))]), sketch],
                                     daemon: daemon)
        #expect(prompt?.details["param"] == "prompt")
        #expect(prompt?.details["max_bytes"] == 65536)
        let engine = try expectError(.invalidParams, frames: [colorize(["engine": .string(String(repeating: "e", count: 2000))]), sketch],
                                     daemon: daemon)
        #expect(engine?.details["param"] == "engine")
        // A header over 1 MiB is refused for its size.
        let big = try expectError(.messageTooLarge, frames: [colorize(["prompt": .string(String(repeating: "p", count: 1_100_000))]), sketch],
                                  daemon: daemon)
        #expect(big?.details["max_bytes"] == 1_048_576)
        // Frames that no image reference names.
        let unused = try expectError(.invalidParams, frames: [colorize([:]), sketch, sketch], daemon: daemon)
        #expect(unused?.details["frame"] == 2)
        let first = try expectError(.invalidParams, frames: [header("colorize", ["sketch": ["frame": 2, "encoding": "png"]]), sketch, sketch],
                                    daemon: daemon)
        #expect(first?.details["frame"] == 1)
        let ping = try expectError(.invalidParams, frames: [header("ping", .object([:])), sketch], daemon: daemon)
        #expect(ping?.details["frame"] == 1)
        try expectError(.invalidParams, frames: [header("jobs.status", ["job": "j-1"]), Data("x".utf8)], daemon: daemon)
        // A reference past the last frame is still frame_out_of_range, not an unused-frame error.
        try expectError(.frameOutOfRange, frames: [header("colorize", ["sketch": ["frame": 2, "encoding": "png"]]), sketch], daemon: daemon)
        // hello reports the limits.
        let limits = try daemon.client().call(.hello, timeout: 60).result["limits"]
        #expect(limits?["max_header_bytes"] == 1_048_576)
        #expect(limits?["max_json_depth"] == 64)
        #expect(limits?["max_prompt_bytes"] == 65536)
        #expect(limits?["max_string_bytes"] == 1024)
        #expect(limits?["max_path_bytes"] == 4096)
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
        for _ in 0..<20 { #expect(try bad.receiveAny(timeout: 60)?.protocolError?.code == .parseError) }
        var reply = try #require(try good.receive(for: "good", timeout: 30))
        while reply.type != .result && reply.type != .error { reply = try #require(try good.receive(for: "good", timeout: 30)) }
        #expect(reply.type == .result)
    }
}
