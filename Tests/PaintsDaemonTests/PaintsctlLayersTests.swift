// paintsctl colorize's layers (--out-dir) and engine options (--option) against the real paintsd and paintsctl
// executables, with the builtin engine, whose result is one visible `color` layer: the picture itself.
import Foundation
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite(.serialized) struct PaintsctlLayersTests {
    @Test func colorizeWritesEveryLayerAndThePictureIntoOutDir() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-layers")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try DaemonProcess(runtimeDirectory: dir)
        #expect(daemon.waitUntilListening())
        let sketch = Repository.path("Examples/art/umbrella-lineart.png"), hints = Repository.path("Examples/art/umbrella-hints.png")
        func colorize(_ extra: [String]) throws -> (status: Int32, out: String, err: String) {
            try paintsctl(["colorize", "--sketch", sketch, "--hints", hints, "--seed", "4", "--quiet"] + extra,
                          endpoint: daemon.endpoint)
        }

        // --out-dir (made with its parents) and --out together: the layers, top first, then image.png.
        let both = try colorize(["--out-dir", dir + "/a/b", "--out", dir + "/one.png"])
        #expect(both.status == 0, "\(both.err)")
        let lines = both.out.split(separator: "\n").map(String.init)
        #expect(lines.count == 3 && lines[0].hasPrefix("wrote \(dir)/one.png (engine builtin, seed 4, "), "\(both.out)")
        #expect(Array(lines.dropFirst()) == ["wrote \(dir)/a/b/color.png (layer color)", "wrote \(dir)/a/b/image.png"],
                "\(both.out)")
        let color = try PNGCodec.read(path: dir + "/a/b/color.png")
        #expect(color.width == 512 && color.height == 512)
        // The builtin engine's one layer is the picture itself.
        #expect(color == (try PNGCodec.read(path: dir + "/a/b/image.png")))
        #expect(color == (try PNGCodec.read(path: dir + "/one.png")))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir + "/a/b").sorted() == ["color.png", "image.png"])

        // --out-dir alone; the JSON reply lists the layers.
        let json = try colorize(["--out-dir", dir + "/c", "--json"])
        #expect(json.status == 0, "\(json.err)")
        let layers = try JSONValue.parse(Data(json.out.utf8))["result"]?["layers"]?.arrayValue ?? []
        #expect(layers.map { $0["name"]?.stringValue } == ["color"] && layers.first?["visible"] == true)
        #expect(FileManager.default.fileExists(atPath: dir + "/c/color.png") && FileManager.default.fileExists(atPath: dir + "/c/image.png"))

        // Neither: a usage error, nothing sent. A file in the way of --out-dir: said before sending.
        let neither = try colorize([])
        #expect(neither.status == 64 && neither.err.contains("--out-dir"), "\(neither.err)")
        FileManager.default.createFile(atPath: dir + "/file", contents: Data())
        let blocked = try colorize(["--out-dir", dir + "/file"])
        #expect(blocked.status == 2 && blocked.err.contains("is a file, not a directory"), "\(blocked.err)")

        #expect(try paintsctl(["shutdown", "--timeout", "30"], endpoint: daemon.endpoint).status == 0)
        #expect(daemon.waitForExit() == 0)
    }

    @Test func optionsKeepTheirTypesAndStringOptionsTheirText() throws {
        let dir = try TemporaryDirectory.make(prefix: "paintsd-layers")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try DaemonProcess(runtimeDirectory: dir)
        #expect(daemon.waitUntilListening())
        let sketch = Repository.path("Examples/art/umbrella-lineart.png"), hints = Repository.path("Examples/art/umbrella-hints.png")
        func colorize(_ options: [String], out: String) throws -> (status: Int32, out: String, err: String) {
            try paintsctl(["colorize", "--sketch", sketch, "--hints", hints, "--seed", "2", "--quiet", "--out", out]
                          + options.flatMap { ["--option", $0] }, endpoint: daemon.endpoint)
        }
        // An integer, a boolean and a string, each taken as its type: the lines drawn over the colours differ.
        let plain = try colorize(["gap_closing=3", "composite_lines=false", "empty_key=none"], out: dir + "/plain.png")
        #expect(plain.status == 0, "\(plain.err)")
        let lined = try colorize(["gap_closing=3", "composite_lines=true", "empty_key=none"], out: dir + "/lined.png")
        #expect(lined.status == 0, "\(lined.err)")
        #expect(try PNGCodec.read(path: dir + "/plain.png") != (try PNGCodec.read(path: dir + "/lined.png")))
        // A string option whose text parses as JSON stays a string (the daemon says the value it got, quoted)...
        let number = try colorize(["empty_key=123"], out: dir + "/x.png")
        #expect(number.status == 2 && number.err.contains("got \"123\""), "\(number.err)")
        // ...and a number option given text is refused by the daemon, not turned into something else.
        let text = try colorize(["gap_closing=wide"], out: dir + "/x.png")
        #expect(text.status == 2 && text.err.contains("gap_closing"), "\(text.err)")
        #expect(try paintsctl(["shutdown", "--timeout", "30"], endpoint: daemon.endpoint).status == 0)
        #expect(daemon.waitForExit() == 0)
    }
}
