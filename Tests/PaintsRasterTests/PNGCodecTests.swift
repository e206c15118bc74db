// Tests of PNG decoding and encoding through libpng, on the sample art and on hostile inputs.
import Foundation
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite struct PNGCodecTests {
    @Test func decodesTheSampleArt() throws {
        let image = try Repository.image("Examples/art/umbrella-colored.png")
        #expect(image.width == 512)
        #expect(image.height > 400)
        #expect(image.isOpaque)
        // The sample has white background corners and dark line pixels.
        #expect(image.pixel(x: 0, y: 0) == .white)
        #expect(image.pixels.count == image.width * image.height * 4)
        let hints = try Repository.image("Examples/art/umbrella-hints.png")
        #expect(!hints.isOpaque)
    }

    @Test func roundTripsEveryPixelAndAlpha() throws {
        var image = RGBAImage(width: 37, height: 19)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<image.pixelCount {
            image.setPixel(i, RGBA(UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng),
                                   UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng)))
        }
        for fast in [true, false] {
            let back = try PNGCodec.decode(PNGCodec.encode(image, fast: fast))
            #expect(back == image)
        }
    }

    @Test func readsDimensionsWithoutDecoding() throws {
        let huge = PNGFixtures.headerOnly(width: 100_000, height: 100_000)
        let size = try PNGCodec.dimensions(of: huge)
        #expect(size.width == 100_000 && size.height == 100_000)
        #expect(throws: RasterError.tooLarge(width: 100_000, height: 100_000, maxPixels: 1 << 26)) {
            try PNGCodec.decode(huge, maxPixels: 1 << 26)
        }
    }

    @Test func rejectsCorruptAndTruncatedData() throws {
        #expect(throws: RasterError.self) { try PNGCodec.decode(Data("not a png at all".utf8)) }
        #expect(throws: RasterError.self) { try PNGCodec.decode(Data()) }
        let png = try Repository.data("Examples/art/umbrella-lineart.png")
        #expect(throws: RasterError.self) { try PNGCodec.decode(PNGFixtures.truncated(png)) }
        var flipped = png
        for i in stride(from: 200, to: 600, by: 7) { flipped[i] ^= 0x5A }
        #expect(throws: RasterError.self) { try PNGCodec.decode(flipped) }
    }

    @Test func rawPixelsMustMatchTheirDimensions() {
        #expect(throws: RasterError.byteCountMismatch(expected: 16, actual: 15)) {
            try RGBAImage(width: 2, height: 2, pixels: [UInt8](repeating: 0, count: 15))
        }
    }
}

@Suite struct ResampleTests {
    @Test func downscaleAveragesAndKeepsFlatColours() {
        var image = RGBAImage(width: 4, height: 4, fill: RGBA(200, 100, 50))
        image.setPixel(x: 0, y: 0, .black)
        let small = image.resized(width: 2, height: 2)
        #expect(small.pixel(x: 1, y: 1) == RGBA(200, 100, 50))
        #expect(small.pixel(x: 0, y: 0) == RGBA(150, 75, 38))
    }

    @Test func transparentPixelsDoNotBleedColour() {
        var image = RGBAImage(width: 2, height: 1)
        image.setPixel(x: 0, y: 0, RGBA(255, 0, 0))
        image.setPixel(x: 1, y: 0, RGBA(0, 255, 0, 0))
        let up = image.resized(width: 3, height: 1)
        #expect(up.pixel(x: 1, y: 0).r == 255 && up.pixel(x: 1, y: 0).g == 0)
        #expect(up.pixel(x: 1, y: 0).a > 0 && up.pixel(x: 1, y: 0).a < 255)
    }

    @Test func overCompositesStraightAlpha() {
        let half = RGBA(255, 0, 0, 128)
        #expect(half.over(.white) == RGBA(255, 127, 127))
        #expect(RGBA.transparent.over(.black) == .black)
        #expect(half.over(.transparent) == half)
    }
}
