// PNG input through a real daemon: pixels arrive unchanged (no colour management), corrupt files are image_decode_failed.
// Fixtures from Tests/Fixtures/png/generate.py.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite(.serialized) struct PNGDecodeDaemonTests {
    func fixture(_ name: String) throws -> Data { try Repository.data("Tests/Fixtures/png/\(name).png") }

    /// `undo.preview` step 0 is the finished picture: the input exactly, even when the file carries gAMA 1.0
    /// (libpng's simplified API turned grey 128 into 186) or is interlaced 16-bit.
    @Test func undoPreviewStepZeroReturnsTheInputSamples() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let params: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"], "steps": [0], "engine": "builtin"]
        let grey = try client.collect(.undoPreview, params, frames: [try fixture("grey8-gama100-128")]).final
        try #require(grey.type == .result, "\(grey.header.serializedString())")
        let frames = grey.result["frames"]?.arrayValue ?? []
        try #require(frames.count == 1)
        let image = try PNGCodec.decode(try #require(grey.imageData(frames[0]["image"])))
        #expect(image.width == 4 && image.height == 4)
        #expect((0..<image.pixelCount).allSatisfy { image.pixel($0) == RGBA(128, 128, 128, 255) })

        let interlaced = try client.collect(.undoPreview, params, frames: [try fixture("adam7-rgb16-32x32")]).final
        let back = try PNGCodec.decode(try #require(interlaced.imageData(interlaced.result["frames"]?.arrayValue?.first?["image"])))
        let expected = try Repository.data("Tests/Fixtures/png/adam7-rgb16-32x32.rgba")
        #expect(back.width == 32 && back.height == 32 && back.pixels.count == expected.count)
        #expect(zip(back.pixels, expected).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
        #expect(back.pixel(x: 0, y: 0) == RGBA(255, 255, 0, 255))
    }

    /// Bad headers fail at intake, bad image data when the job decodes it: both are image_decode_failed.
    @Test func corruptFilesAreImageDecodeFailed() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let params: [String: JSONValue] = ["image": ["frame": 1, "encoding": "png"], "steps": [0], "engine": "builtin"]
        for name in ["bad-signature", "zero-width", "ihdr-bad-crc", "idat-bad-crc", "truncated-in-idat", "zlib-bad-deflate"] {
            let reply = try client.collect(.undoPreview, params, frames: [try fixture(name)]).final
            #expect(reply.type == .error, "\(name)")
            #expect(reply.protocolError?.code == .imageDecodeFailed, "\(name): \(reply.header.serializedString())")
        }
        #expect(try client.call(.ping).result["pong"] == true)
    }
}
