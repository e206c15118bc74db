// The colour layers at canvas size: palette lock toward the scribbles (measured in OKLab), the working-size colour under
// the full-resolution inside mask, and the line art multiplied over the colour.
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite struct PaletteLockTests {
    static let red = RGBA(200, 40, 40)
    static let blue = RGBA(40, 60, 200)

    /// 40x20 flats: red (a scribble colour) left of x = 20, blue (not one) right of it. The colour: a greenish shading
    /// down the rows on the left, an orange one on the right; a few transparent pixels of a wild colour on the left.
    static func scene() -> (color: RGBAImage, flats: RGBAImage) {
        var flats = RGBAImage(width: 40, height: 20), color = RGBAImage(width: 40, height: 20)
        for y in 0..<20 {
            for x in 0..<40 {
                flats.setPixel(x: x, y: y, x < 20 ? red : blue)
                let k = UInt8(y * 3), j = UInt8(x % 7)
                color.setPixel(x: x, y: y, x < 20 ? RGBA(60 + k, 130 + k + j, 70 + k / 2) : RGBA(220, 120 + k, 40 + j))
            }
        }
        for (x, y) in [(3, 4), (11, 15), (17, 2)] { color.setPixel(x: x, y: y, RGBA(255, 255, 0, 0)) }
        return (color, flats)
    }

    /// Mean OKLab of `color` over pixels with `x < 20` (the red region) that are not transparent, and the standard
    /// deviation of their lightness.
    static func statistics(_ color: RGBAImage, columns: Range<Int> = 0..<20) -> (mean: OKLab, lightnessSpread: Float) {
        var labs: [OKLab] = []
        for y in 0..<color.height {
            for x in columns where color.pixel(x: x, y: y).a > 0 { labs.append(OKLab(color.pixel(x: x, y: y))) }
        }
        let n = Float(labs.count)
        let mean = OKLab(l: labs.map(\.l).reduce(0, +) / n, a: labs.map(\.a).reduce(0, +) / n,
                         b: labs.map(\.b).reduce(0, +) / n)
        let variance = labs.map { ($0.l - mean.l) * ($0.l - mean.l) }.reduce(0, +) / n
        return (mean, variance.squareRoot())
    }

    static func distance(_ p: OKLab, _ q: OKLab) -> Float {
        ((p.l - q.l) * (p.l - q.l) + (p.a - q.a) * (p.a - q.a) + (p.b - q.b) * (p.b - q.b)).squareRoot()
    }

    @Test(arguments: [Float(0.25), 0.5, 0.75, 1])
    func aShadedRegionDriftsTowardItsScribbleKeepingItsShading(_ amount: Float) throws {
        let (before, flats) = Self.scene()
        var after = before
        try ColourLayers.lockPalette(&after, flats: flats, scribbleColours: [Self.red], amount: amount,
                                     context: RecordingContext())
        let target = OKLab(Self.red)
        let (meanBefore, spreadBefore) = Self.statistics(before), (meanAfter, spreadAfter) = Self.statistics(after)
        let ratio = Self.distance(meanAfter, target) / Self.distance(meanBefore, target)
        print("palette lock \(amount): mean distance to the scribble \(Self.distance(meanBefore, target)) -> "
              + "\(Self.distance(meanAfter, target)), lightness spread \(spreadBefore) -> \(spreadAfter)")
        #expect(Self.distance(meanBefore, target) > 0.15)
        #expect(abs(ratio - (1 - amount)) < 0.03)
        #expect(abs(spreadAfter - spreadBefore) < 0.05 * spreadBefore)
        // Hue follows the scribble: at amount 1 the region is reddish (red above green) everywhere it has colour.
        if amount == 1 {
            for y in 0..<20 {
                for x in 0..<20 where after.pixel(x: x, y: y).a > 0 {
                    #expect(after.pixel(x: x, y: y).r > after.pixel(x: x, y: y).g)
                }
            }
        }
        // The unscribbled region and the transparent pixels are untouched, byte for byte.
        for y in 0..<20 {
            for x in 0..<40 where x >= 20 || before.pixel(x: x, y: y).a == 0 {
                #expect(after.pixel(x: x, y: y) == before.pixel(x: x, y: y))
            }
        }
    }

    @Test func amountZeroIsTheIdentity() throws {
        let (before, flats) = Self.scene()
        var after = before
        try ColourLayers.lockPalette(&after, flats: flats, scribbleColours: [Self.red, Self.blue], amount: 0,
                                     context: RecordingContext())
        #expect(after == before)
    }

    /// Two separate regions of the same scribble colour, one shaded dark and one light: each is brought to the
    /// scribble on its own (together, neither mean would land on it). They touch only at a corner, which does not join
    /// them.
    @Test func eachConnectedRegionIsLockedOnItsOwn() throws {
        var flats = RGBAImage(width: 20, height: 20, fill: Self.blue), color = RGBAImage(width: 20, height: 20)
        for y in 0..<20 {
            for x in 0..<20 {
                let first = x < 10 && y < 10, second = x >= 10 && y >= 10
                if first || second { flats.setPixel(x: x, y: y, Self.red) }
                let k = UInt8((x + y) % 5 * 4)
                color.setPixel(x: x, y: y, first ? RGBA(40 + k, 30, 60) : second ? RGBA(230, 190 + k, 200) : RGBA(90, 90, 90))
            }
        }
        let original = color
        try ColourLayers.lockPalette(&color, flats: flats, scribbleColours: [Self.red], amount: 1,
                                     context: RecordingContext())
        let target = OKLab(Self.red)
        for (xs, ys) in [(0..<10, 0..<10), (10..<20, 10..<20)] {
            var sum = OKLab(l: 0, a: 0, b: 0)
            for y in ys { for x in xs { let c = OKLab(color.pixel(x: x, y: y)); sum.l += c.l; sum.a += c.a; sum.b += c.b } }
            let mean = OKLab(l: sum.l / 100, a: sum.a / 100, b: sum.b / 100)
            #expect(Self.distance(mean, target) < 0.01, "mean \(mean), scribble \(target)")
        }
        #expect(color.pixel(x: 15, y: 2) == original.pixel(x: 15, y: 2))
    }

    @Test func refusesFlatsOfAnotherSizeAndLooksForACancelEveryRow() throws {
        var (color, flats) = Self.scene()
        #expect(throws: ProtocolError.self) {
            try ColourLayers.lockPalette(&color, flats: RGBAImage(width: 4, height: 4), scribbleColours: [Self.red],
                                         amount: 1, context: RecordingContext())
        }
        let context = RecordingContext()
        try ColourLayers.lockPalette(&color, flats: flats, scribbleColours: [Self.red], amount: 0.5, context: context)
        #expect(context.checks >= 3 * color.height)
    }
}

@Suite struct ColourLayerTests {
    /// An 8x8 working picture of a horizontal ramp (red 10 + 20 x), brought to 32x32 with the left 13 columns inside.
    @Test func resizesBilinearlyAndCutsAlongTheMaskAtCanvasResolution() throws {
        var working = RGBAImage(width: 8, height: 8)
        for y in 0..<8 { for x in 0..<8 { working.setPixel(x: x, y: y, RGBA(UInt8(10 + 20 * x), 77, 200)) } }
        let inside = (0..<(32 * 32)).map { $0 % 32 < 13 }
        let layer = try ColourLayers.colourLayer(working: working, canvasWidth: 32, canvasHeight: 32, inside: inside,
                                                 context: RecordingContext())
        #expect(layer.width == 32 && layer.height == 32)
        for y in 0..<32 {
            for x in 0..<32 {
                let c = layer.pixel(x: x, y: y)
                if x >= 13 {
                    #expect(c == .transparent, "outside at \(x), \(y): \(c)")
                    continue
                }
                // Bilinear between working pixel centres: canvas x sits at working (x + 0.5) / 4 - 0.5, held at the
                // edge; the ramp comes out as the same ramp.
                let u = min(7, max(0, (Double(x) + 0.5) / 4 - 0.5))
                #expect(c == RGBA(UInt8((10 + 20 * u).rounded()), 77, 200, 255), "at \(x), \(y)")
            }
        }
    }

    /// Shrinking averages what each canvas pixel covers: alternate columns of 0 and 200 become 100, not one or the other.
    @Test func shrinksByAreaAverage() throws {
        var working = RGBAImage(width: 12, height: 6)
        for y in 0..<6 { for x in 0..<12 { working.setPixel(x: x, y: y, RGBA(x % 2 == 0 ? 0 : 200, 50, 50)) } }
        let layer = try ColourLayers.colourLayer(working: working, canvasWidth: 6, canvasHeight: 3,
                                                 inside: [Bool](repeating: true, count: 18), context: RecordingContext())
        for p in 0..<18 { #expect(layer.pixel(p) == RGBA(100, 50, 50)) }
        // 12 to 5 columns: 2.4 source columns per canvas pixel, weighted by how much of each it covers.
        let five = try ColourLayers.colourLayer(working: working, canvasWidth: 5, canvasHeight: 3,
                                                inside: [Bool](repeating: true, count: 15), context: RecordingContext())
        // Canvas column 0 covers columns 0, 1 and 0.4 of 2: (0 + 200 + 0.4 * 0) / 2.4 = 83.3.
        #expect(five.pixel(x: 0, y: 0) == RGBA(83, 50, 50))
        // Column 2 covers 0.2 of 4, 5, 6 and 0.2 of 7: (0.2 * 0 + 200 + 0 + 0.2 * 200) / 2.4 = 100.
        #expect(five.pixel(x: 2, y: 1) == RGBA(100, 50, 50))
        // Column 4 covers 0.4 of 9 (200), 10 and 11: (80 + 0 + 200) / 2.4 = 116.7.
        #expect(five.pixel(x: 4, y: 2) == RGBA(117, 50, 50))
    }

    @Test func refusesAMaskOfAnotherSizeAndLooksForACancelEveryRow() throws {
        let working = RGBAImage(width: 8, height: 8, fill: .white)
        #expect(throws: ProtocolError.self) {
            try ColourLayers.colourLayer(working: working, canvasWidth: 32, canvasHeight: 32,
                                         inside: [Bool](repeating: true, count: 31 * 32), context: RecordingContext())
        }
        let context = RecordingContext()
        _ = try ColourLayers.colourLayer(working: working, canvasWidth: 32, canvasHeight: 40,
                                         inside: [Bool](repeating: true, count: 32 * 40), context: context)
        #expect(context.checks >= 40)
    }
}

@Suite struct LinesMultipliedTests {
    /// A colour layer: opaque orange in the left half, transparent in the right half (outside the drawing).
    static func colour() -> RGBAImage {
        var layer = RGBAImage(width: 16, height: 8)
        for y in 0..<8 { for x in 0..<8 { layer.setPixel(x: x, y: y, RGBA(200, 100, 50)) } }
        return layer
    }

    @Test func anOpaqueSketchKeepsItsInkAndItsPaperShowsTheColour() throws {
        // Black ink in column 3 and 12, a grey line in column 5, white paper elsewhere.
        var sketch = RGBAImage(width: 16, height: 8, fill: .white)
        for y in 0..<8 {
            sketch.setPixel(x: 3, y: y, .black)
            sketch.setPixel(x: 12, y: y, .black)
            sketch.setPixel(x: 5, y: y, RGBA(128, 128, 128))
        }
        let result = try ColourLayers.linesMultiplied(color: Self.colour(), sketch: sketch, context: RecordingContext())
        for y in 0..<8 {
            #expect(result.pixel(x: 3, y: y) == .black)
            #expect(result.pixel(x: 12, y: y) == .black)
            // Multiply: 200 * 128 / 255 = 100.4, 100 * 128 / 255 = 50.2, 50 * 128 / 255 = 25.1.
            #expect(result.pixel(x: 5, y: y) == RGBA(100, 50, 25))
            for x in [0, 1, 2, 4, 6, 7] { #expect(result.pixel(x: x, y: y) == RGBA(200, 100, 50)) }
            // Where there is no colour, the sketch as it is: its white paper.
            for x in [8, 11, 13, 15] { #expect(result.pixel(x: x, y: y) == .white) }
        }
    }

    @Test func aTransparentSketchLeavesTheOutsideTransparentButItsLines() throws {
        // Black lines on a transparent layer: solid in column 3 and 12, anti-aliased (alpha 128) in column 6 and 10.
        var sketch = RGBAImage(width: 16, height: 8)
        for y in 0..<8 {
            sketch.setPixel(x: 3, y: y, .black)
            sketch.setPixel(x: 12, y: y, .black)
            sketch.setPixel(x: 6, y: y, RGBA(0, 0, 0, 128))
            sketch.setPixel(x: 10, y: y, RGBA(0, 0, 0, 128))
        }
        let result = try ColourLayers.linesMultiplied(color: Self.colour(), sketch: sketch, context: RecordingContext())
        for y in 0..<8 {
            #expect(result.pixel(x: 3, y: y) == .black)
            #expect(result.pixel(x: 12, y: y) == .black)
            // Over the colour: (1 - 128/255) * 200 = 99.6, * 100 = 49.8, * 50 = 24.9; opaque.
            #expect(result.pixel(x: 6, y: y) == RGBA(100, 50, 25))
            // Outside: the line as it is, half opaque.
            #expect(result.pixel(x: 10, y: y) == RGBA(0, 0, 0, 128))
            for x in [0, 2, 7] { #expect(result.pixel(x: x, y: y) == RGBA(200, 100, 50)) }
            for x in [8, 9, 11, 13, 15] { #expect(result.pixel(x: x, y: y).a == 0) }
        }
    }

    @Test func refusesPicturesOfDifferentSizesAndLooksForACancelEveryRow() throws {
        #expect(throws: ProtocolError.self) {
            try ColourLayers.linesMultiplied(color: Self.colour(), sketch: RGBAImage(width: 16, height: 9),
                                             context: RecordingContext())
        }
        let context = RecordingContext()
        _ = try ColourLayers.linesMultiplied(color: Self.colour(), sketch: RGBAImage(width: 16, height: 8),
                                             context: context)
        #expect(context.checks >= 8)
    }
}
