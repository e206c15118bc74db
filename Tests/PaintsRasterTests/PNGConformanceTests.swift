// PNG decoding against pypng's decoder: every fixture of Tests/Fixtures/png (from generate.py there) decoded by the
// production PNGCodec and compared with the expected 8-bit straight RGBA; every corrupt fixture must fail.
import Foundation
import PaintsRaster
import PaintsTestSupport
import Testing

/// One entry of Tests/Fixtures/png/manifest.json.
struct PNGFixture: Decodable, Sendable, CustomTestStringConvertible {
    var name: String
    var width: Int = 0
    var height: Int = 0
    /// 1 for 16-bit files (libpng's rounding to 8 bits may differ from round(v*255/65535) by one), else 0.
    var tolerance: Int = 0

    var testDescription: String { name }

    private enum CodingKeys: String, CodingKey { case name, width, height, tolerance }

    init(from decoder: any Decoder) throws {
        // Corrupt entries have a name only.
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        width = try c.decodeIfPresent(Int.self, forKey: .width) ?? 0
        height = try c.decodeIfPresent(Int.self, forKey: .height) ?? 0
        tolerance = try c.decodeIfPresent(Int.self, forKey: .tolerance) ?? 0
    }
    var png: Data { get throws { try Repository.data("Tests/Fixtures/png/\(name).png") } }
    var expected: Data { get throws { try Repository.data("Tests/Fixtures/png/\(name).rgba") } }

    struct Manifest: Decodable, Sendable {
        var valid: [PNGFixture]
        var corrupt: [PNGFixture]
    }

    static let manifest: Manifest? = try? JSONDecoder().decode(
        Manifest.self, from: Repository.data("Tests/Fixtures/png/manifest.json"))
    static var valid: [PNGFixture] { manifest?.valid ?? [] }
    static var corrupt: [PNGFixture] { manifest?.corrupt ?? [] }
    static func named(_ name: String) throws -> PNGFixture { try #require(valid.first { $0.name == name }) }
}

@Suite struct PNGConformanceTests {
    @Test func theManifestListsEveryClass() throws {
        let manifest = try #require(PNGFixture.manifest, "Tests/Fixtures/png/manifest.json missing or unreadable")
        #expect(manifest.valid.count >= 50)
        #expect(manifest.corrupt.count >= 20)
        for name in ["grey1", "grey2", "grey4", "grey8", "grey16", "rgb8", "rgb16", "pal1", "pal2", "pal4", "pal8",
                     "pal8-trns", "greyalpha8", "greyalpha16", "rgba8", "rgba16", "adam7-rgb16-32x32",
                     "grey8-gama100-128", "grey16-8080", "rgb8-gama045", "rgba8-srgb", "rgb8-iccp", "grey8-key",
                     "rgb16-key", "rgba8-1x1", "pal2-trns-3x5", "rgb8-33x17"] {
            #expect(manifest.valid.contains { $0.name == name }, "\(name)")
        }
    }

    @Test(arguments: PNGFixture.valid)
    func decodesToTheStoredSamples(_ fixture: PNGFixture) throws {
        let data = try fixture.png
        let image = try PNGCodec.decode(data)
        #expect(image.width == fixture.width && image.height == fixture.height)
        let size = try PNGCodec.dimensions(of: data)
        #expect(size.width == fixture.width && size.height == fixture.height)
        let expected = [UInt8](try fixture.expected)
        try #require(expected.count == fixture.width * fixture.height * 4)
        try #require(image.pixels.count == expected.count)
        var differing = 0, worst = 0, first: Int?
        for i in expected.indices {
            let d = abs(Int(image.pixels[i]) - Int(expected[i]))
            if d > fixture.tolerance {
                differing += 1
                first = first ?? i
            }
            worst = max(worst, d)
        }
        if let first {
            let p = first / 4
            Issue.record("""
                \(fixture.name): \(differing) samples off by more than \(fixture.tolerance) (worst \(worst)); first at \
                pixel (\(p % fixture.width),\(p / fixture.width)): \(image.pixels[p * 4..<p * 4 + 4].map { $0 }) \
                instead of \(expected[p * 4..<p * 4 + 4].map { $0 })
                """)
        }
    }

    @Test(arguments: PNGFixture.corrupt)
    func rejectsCorruptFiles(_ fixture: PNGFixture) throws {
        let data = try fixture.png
        do {
            let image = try PNGCodec.decode(data)
            Issue.record("\(fixture.name) decoded to \(image.width)x\(image.height) instead of failing")
        } catch {
            guard case .decodeFailed = error else {
                Issue.record("\(fixture.name): \(error), expected decodeFailed")
                return
            }
        }
    }

    /// The three failures of issue 10 with libpng's simplified API.
    @Test func colourManagementIsNotApplied() throws {
        // 8-bit grey 128 with gAMA 1.0 came back 186.
        let gamma = try PNGCodec.decode(try PNGFixture.named("grey8-gama100-128").png)
        #expect(gamma.pixels == [UInt8]([128, 128, 128, 255]).repeated(gamma.pixelCount))
        // 16-bit grey 0x8080 without gAMA was taken as linear light: 186.
        let linear = try PNGCodec.decode(try PNGFixture.named("grey16-8080").png)
        #expect(linear.pixels == [UInt8]([128, 128, 128, 255]).repeated(linear.pixelCount))
        // Interlaced 16-bit RGB came back as garbage; its first sample is 65535,65535,0 (as in PngSuite's basi2c16).
        let interlaced = try PNGCodec.decode(try PNGFixture.named("adam7-rgb16-32x32").png)
        #expect(interlaced.pixel(x: 0, y: 0) == RGBA(255, 255, 0, 255))
    }

    @Test func theSizeLimitIsCheckedBeforeDecoding() throws {
        let fixture = try PNGFixture.named("rgb8-33x17")
        let pixels = fixture.width * fixture.height
        #expect(throws: RasterError.tooLarge(width: 33, height: 17, maxPixels: pixels - 1)) {
            try PNGCodec.decode(try fixture.png, maxPixels: pixels - 1)
        }
        #expect(try PNGCodec.decode(try fixture.png, maxPixels: pixels).width == 33)
    }

    /// Encoding then decoding is exact (the encoder writes no chunk the decoder would act on).
    @Test func reEncodedFixturesRoundTrip() throws {
        for fixture in PNGFixture.valid.prefix(20) {
            let image = try PNGCodec.decode(try fixture.png)
            #expect(try PNGCodec.decode(PNGCodec.encode(image)) == image, "\(fixture.name)")
        }
    }
}

extension Array {
    fileprivate func repeated(_ count: Int) -> [Element] { (0..<count).flatMap { _ in self } }
}
