// SDRO's blueprint: the reference app's binarisation (cv2.adaptiveThreshold MEAN_C, blockSize 5, C 7 on
// cvtColor RGB2GRAY) bit for bit against OpenCV's own output (Tests/Fixtures/sdro/threshold, from generate.py), then
// inverted to white lines on black and area-resized to the working size.
import Foundation
import PaintsEngine
import PaintsRaster
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct LineArtBlueprintTests {
    @Test(arguments: [("umbrella", "Examples/art/umbrella-lineart.png"), ("blocks", "Examples/art/blocks-lineart.png"),
                      ("noise", "Tests/Fixtures/sdro/threshold/noise-source.png"), ("lineart", "Tests/Fixtures/sdro/lineart.png")])
    func thresholdEqualsOpenCV(_ name: String, _ source: String) throws {
        let image = try PNGCodec.read(path: Repository.path(source))
        let got = try LineArtBlueprint.adaptiveThreshold(LineArtBlueprint.grey(image), width: image.width, height: image.height,
                                                         context: DetachedJobContext())
        let expected = try PNGCodec.read(path: Repository.path("Tests/Fixtures/sdro/threshold/\(name).png"))
        #expect(expected.width == image.width && expected.height == image.height)
        let differing = (0..<got.count).filter { got[$0] != expected.pixel($0).r }.count
        print("threshold \(name): \(differing) of \(got.count) pixels differ from OpenCV; \(got.filter { $0 == 0 }.count) line pixels")
        #expect(differing == 0)
        #expect(got.contains(0) && got.contains(255))
    }

    @Test func blueprintIsWhiteLinesOnBlackAtTheWorkingSize() throws {
        let lines = try PNGCodec.read(path: Repository.path("Tests/Fixtures/sdro/lineart.png"))
        // At the sketch's own size it is the inverted threshold exactly: what the fixture's pipeline fed its UNet.
        let same = try LineArtBlueprint.blueprint(lines, width: lines.width, height: lines.height, context: DetachedJobContext())
        let io = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/sdro/pipeline-io.safetensors"))
        #expect(same == (try io.tensor("blueprint")))
        // A transparent layer with the same ink gives the same blueprint (flattened over white).
        var transparent = RGBAImage(width: lines.width, height: lines.height)
        for p in 0..<lines.pixelCount {
            let c = lines.pixel(p)
            let ink = 255 - Int(c.r)
            transparent.setPixel(p, RGBA(0, 0, 0, UInt8(ink)))
        }
        let fromTransparent = try LineArtBlueprint.blueprint(transparent, width: lines.width, height: lines.height, context: DetachedJobContext())
        let agreeing = zip(fromTransparent.data, same.data).filter { $0 == $1 }.count
        #expect(agreeing > same.data.count * 99 / 100, "\(agreeing) of \(same.data.count)")
        // Half the size: area averages of the full-size blueprint, values in 0...1, lines light on a dark ground.
        let half = try LineArtBlueprint.blueprint(lines, width: 48, height: 32, context: DetachedJobContext())
        #expect(half.shape == [1, 3, 32, 48])
        #expect(half.data.allSatisfy { (0...1).contains($0) })
        let mean = half.data.reduce(0, +) / Float(half.data.count), fullMean = same.data.reduce(0, +) / Float(same.data.count)
        #expect(abs(mean - fullMean) < 1e-4 && mean < 0.5)
        let plane = 48 * 32
        #expect(Array(half.data[0..<plane]) == Array(half.data[plane..<(2 * plane)]))
    }
}
