// The built-in fill's structure for engines that paint over it (`BuiltinColorizer.fill`): the flats, the drawing's
// inside (checked against drawings whose inside is known by construction) and the scribbles' colours.
import Foundation
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite struct FlatFillTests {
    let engine = BuiltinColorizer()

    /// A 64x64 white canvas with a black square outline 2 px thick whose outer edge is at 16 and 47 (so the line
    /// pixels are 16, 17 and 46, 47 along each axis).
    static func square() -> RGBAImage {
        var sketch = RGBAImage(width: 64, height: 64, fill: .white)
        for i in 16..<48 {
            for t in 0..<2 {
                sketch.setPixel(x: i, y: 16 + t, .black)
                sketch.setPixel(x: i, y: 46 + t, .black)
                sketch.setPixel(x: 16 + t, y: i, .black)
                sketch.setPixel(x: 46 + t, y: i, .black)
            }
        }
        return sketch
    }

    /// Share of the known drawing's measured pixels whose `inside` is what its truth says (a colour: inside;
    /// transparent: the background, outside).
    static func insideAccuracy(_ inside: [Bool], _ drawing: KnownDrawing) -> (share: Double, pixels: Int) {
        var total = 0, correct = 0
        for p in 0..<drawing.truth.count {
            guard let t = drawing.truth[p] else { continue }
            total += 1
            if inside[p] == (t.a > 0) { correct += 1 }
        }
        return (Double(correct) / Double(max(total, 1)), total)
    }

    @Test(arguments: ["umbrella", "blocks"])
    func flatsAreColorizeWithoutTheLines(_ name: String) throws {
        let sketch = try Repository.image("Examples/art/\(name)-lineart.png")
        let hints = try Repository.image("Examples/art/\(name)-hints.png")
        let colorized = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext())
        // composite_lines is accepted and changes nothing: the flats never have lines.
        for options: [String: JSONValue] in [[:], ["composite_lines": true]] {
            let fill = try engine.fill(ColorizeInput(sketch: sketch, hints: hints, options: options),
                                       context: RecordingContext())
            #expect(fill.flats == colorized.image)
            #expect(fill.info == colorized.info)
            #expect(fill.inside.count == sketch.pixelCount)
        }
        // The scribbles' colours are the opaque colours of the hints layer off the lines (all of them, in the sample).
        var scribbled = Set<RGBA>()
        for p in 0..<hints.pixelCount where hints.pixel(p).a > 0 {
            var c = hints.pixel(p)
            c.a = 255
            scribbled.insert(c)
        }
        let fill = try engine.fill(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext())
        #expect(fill.scribbleColours == scribbled)
        #expect(!scribbled.isEmpty)
    }

    /// Whether (x, y) is inside the square: inside its outline's inner half (17...46 along each axis). The four inner
    /// corners of the line are as far from the outside as from the inside (two steps through line pixels each way): a
    /// tie, not measured (nil).
    static func insideSquare(_ x: Int, _ y: Int) -> Bool? {
        if [17, 46].contains(x) && [17, 46].contains(y) { return nil }
        return (17...46).contains(x) && (17...46).contains(y)
    }

    /// With nothing to colour from the flats are empty, but the inside is the square with the inner half of its
    /// outline: the outline's outer pixels (16, 47) are outside, its inner ones (17, 46) inside.
    @Test func insideIsFoundWithNoHintsAndNoReference() throws {
        let fill = try engine.fill(ColorizeInput(sketch: Self.square()), context: RecordingContext())
        #expect(fill.flats.pixels.allSatisfy { $0 == 0 })
        #expect(fill.scribbleColours.isEmpty)
        var wrong: [(Int, Int)] = []
        for y in 0..<64 {
            for x in 0..<64 {
                if let expected = Self.insideSquare(x, y), fill.inside[y * 64 + x] != expected { wrong.append((x, y)) }
            }
        }
        #expect(wrong.isEmpty, "inside wrong at \(wrong.prefix(10))")
    }

    /// A vertical line across the whole canvas: two regions, both touching the border. The scribbled one is inside,
    /// the other outside; the line is split between them.
    @Test func aScribbledRegionTouchingTheBorderIsInside() throws {
        var sketch = RGBAImage(width: 48, height: 32, fill: .white)
        for y in 0..<32 { for x in 20..<24 { sketch.setPixel(x: x, y: y, .black) } }
        var hints = RGBAImage(width: 48, height: 32)
        let red = RGBA(210, 30, 30)
        for y in 10..<14 { hints.setPixel(x: 5, y: y, red) }
        let fill = try engine.fill(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext())
        for y in 0..<32 {
            for x in 0..<48 {
                #expect(fill.inside[y * 48 + x] == (x < 22), "inside at \(x), \(y)")
                // The flats: the scribble's colour exactly where inside.
                #expect(fill.flats.pixel(x: x, y: y) == (x < 22 ? red : .transparent), "flats at \(x), \(y)")
            }
        }
        #expect(fill.scribbleColours == [red])
    }

    /// A reference colours every region, the canvas around the drawing too; the inside is still the square, and a
    /// reference palette colour is no scribble colour.
    @Test func aReferenceColourDoesNotBringTheOutsideIn() throws {
        let reference = RGBAImage(width: 64, height: 64, fill: RGBA(30, 60, 200))
        let fill = try engine.fill(ColorizeInput(sketch: Self.square(), reference: reference), context: RecordingContext())
        #expect(fill.flats.pixel(x: 2, y: 2) == RGBA(30, 60, 200), "the reference colours the outside of the flats")
        #expect(fill.scribbleColours.isEmpty)
        for y in 0..<64 {
            for x in 0..<64 {
                if let expected = Self.insideSquare(x, y) { #expect(fill.inside[y * 64 + x] == expected, "inside at \(x), \(y)") }
            }
        }
    }

    /// A scribble of the empty key (magenta) keeps its area out of the drawing, as it keeps it out of the flats; it is
    /// no scribble colour.
    @Test func anEmptyKeyScribbleKeepsItsAreaOutside() throws {
        var hints = RGBAImage(width: 64, height: 64)
        for x in 28..<36 { hints.setPixel(x: x, y: 30, RGBA(255, 0, 255)) }
        let fill = try engine.fill(ColorizeInput(sketch: Self.square(), hints: hints), context: RecordingContext())
        #expect(!fill.inside.contains(true))
        #expect(fill.scribbleColours.isEmpty)
        // Beside a coloured scribble in another closed shape, the magenta one still keeps its own shape out.
        var two = RGBAImage(width: 128, height: 64, fill: .white)
        let square = Self.square()
        for y in 0..<64 {
            for x in 0..<64 {
                two.setPixel(x: x, y: y, square.pixel(x: x, y: y))
                two.setPixel(x: x + 64, y: y, square.pixel(x: x, y: y))
            }
        }
        var twoHints = RGBAImage(width: 128, height: 64)
        for x in 28..<36 {
            twoHints.setPixel(x: x, y: 30, RGBA(255, 0, 255))
            twoHints.setPixel(x: x + 64, y: 30, RGBA(20, 150, 60))
        }
        let both = try engine.fill(ColorizeInput(sketch: two, hints: twoHints), context: RecordingContext())
        #expect(!both.inside[30 * 128 + 32])
        #expect(both.inside[30 * 128 + 96])
        #expect(both.scribbleColours == [RGBA(20, 150, 60)])
    }

    /// The known drawings of the fill's accuracy tests: the inside is every region but the background, with their
    /// scribbles and without any (clean lines, erased gaps, fur-like open strokes); the measured pixels leave out the
    /// lines (and a band around the fur's outline).
    @Test(arguments: ["clean", "gapped", "furry"])
    func insideOfKnownDrawings(_ name: String) throws {
        let drawing = name == "clean" ? KnownDrawings.clean() : name == "gapped" ? KnownDrawings.gapped().0
            : KnownDrawings.furry()
        for hinted in [true, false] {
            let fill = try engine.fill(ColorizeInput(sketch: drawing.sketch, hints: hinted ? drawing.hints : nil),
                                       context: RecordingContext())
            let (share, pixels) = Self.insideAccuracy(fill.inside, drawing)
            print("builtin fill, inside of the \(name) drawing \(hinted ? "with" : "without") scribbles: "
                  + "\(String(format: "%.4f", share)) of \(pixels) pixels")
            #expect(pixels > 40_000)
            #expect(share >= 0.995)
        }
    }

    /// On the sample art (no scribbles): pixels that are white in the finished picture and light in the line art are
    /// outside; those with a colour are inside.
    @Test(arguments: ["umbrella", "blocks"])
    func insideOfTheSampleArt(_ name: String) throws {
        let sketch = try Repository.image("Examples/art/\(name)-lineart.png")
        let truth = try Repository.image("Examples/art/\(name)-colored.png")
        let fill = try engine.fill(ColorizeInput(sketch: sketch), context: RecordingContext())
        let regions = lightRegions(sketch)
        var total = 0, correct = 0
        for p in 0..<sketch.pixelCount where regions[p] >= 0 {
            let t = truth.pixel(p)
            let white = min(t.r, t.g, t.b) >= 240, colour = Int(max(t.r, t.g, t.b)) - Int(min(t.r, t.g, t.b)) >= 24
            guard white || colour else { continue }
            total += 1
            if fill.inside[p] == colour { correct += 1 }
        }
        let share = Double(correct) / Double(total)
        print("builtin fill, inside of the \(name) sample without scribbles: \(String(format: "%.4f", share)) of \(total)")
        #expect(total > 50_000)
        #expect(share >= 0.99)
    }

    @Test func fillStopsWhenCancelledAndLooksEveryRow() throws {
        let sketch = Self.square()
        let context = RecordingContext()
        _ = try engine.fill(ColorizeInput(sketch: sketch), context: context)
        #expect(context.reports.map(\.stage).prefix(3) == ["lines", "regions", "fill"])
        #expect(context.reports.last?.fraction == 1)
        // The fill stage (both fills) looks for a cancel at least once per row.
        let stages = context.reports.map(\.stage), checks = context.checksAtReport
        let fill = try #require(stages.firstIndex(of: "fill"))
        #expect(checks[fill + 1] - checks[fill] >= 4 * sketch.height)
        #expect(throws: ProtocolError(.cancelled, "cancelled by the test")) {
            try engine.fill(ColorizeInput(sketch: sketch), context: RecordingContext(cancelAfter: 3))
        }
    }
}
