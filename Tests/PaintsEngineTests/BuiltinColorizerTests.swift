// The built-in colorizer measured against the true colours of the sample art, and its gap closing and options.
import Foundation
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

/// Regions of a line drawing found independently of the engine: 4-connected pixels lighter than `threshold`.
func lightRegions(_ sketch: RGBAImage, threshold: Float = 0.6) -> [Int] {
    let n = sketch.pixelCount
    var label = [Int](repeating: -1, count: n)
    var next = 0
    for start in 0..<n where label[start] < 0 && isLight(sketch.pixel(start), threshold) {
        var stack = [start]
        label[start] = next
        while let p = stack.popLast() {
            let x = p % sketch.width
            for q in [p - sketch.width, p + sketch.width, x > 0 ? p - 1 : -1, x + 1 < sketch.width ? p + 1 : -1]
            where q >= 0 && q < n && label[q] < 0 && isLight(sketch.pixel(q), threshold) {
                label[q] = next
                stack.append(q)
            }
        }
        next += 1
    }
    return label
}

func isLight(_ c: RGBA, _ threshold: Float) -> Bool {
    // Composited over white: transparent counts as paper.
    let a = Float(c.a) / 255
    return a * c.luminance + (1 - a) > threshold
}

/// Over every light pixel of the sketch: the share given its true colour (within `tolerance` per channel), or left
/// empty where the true picture is white (outside the drawing); and how many pixels with a true colour stayed empty.
/// Light grey pixels of the true picture (a line's anti-aliased rim on white) are not measured.
func wholeDrawingAccuracy(output: RGBAImage, truth: RGBAImage, sketch: RGBAImage, tolerance: Int = 24) -> (Double, Int, Int) {
    let regions = lightRegions(sketch)
    var total = 0, correct = 0, holes = 0
    for p in 0..<output.pixelCount where regions[p] >= 0 {
        let o = output.pixel(p), t = truth.pixel(p)
        if min(t.r, t.g, t.b) < 240 && Int(max(t.r, t.g, t.b)) - Int(min(t.r, t.g, t.b)) < 24 { continue }
        total += 1
        if min(t.r, t.g, t.b) >= 240 {
            if o.a == 0 { correct += 1 }
        } else if o.a == 255 && abs(Int(o.r) - Int(t.r)) <= tolerance && abs(Int(o.g) - Int(t.g)) <= tolerance
                    && abs(Int(o.b) - Int(t.b)) <= tolerance {
            correct += 1
        } else if o.a == 0 {
            holes += 1
        }
    }
    return (total > 0 ? Double(correct) / Double(total) : 0, total, holes)
}

/// The sketch with short segments of its lines erased: a 3x3 square of paper centred on line pixels at least
/// `spacing` pixels (in a square) from each other.
func eraseGaps(_ sketch: RGBAImage, spacing: Int = 24) -> (RGBAImage, Int) {
    var out = sketch
    var centres: [(Int, Int)] = []
    for p in 0..<sketch.pixelCount where sketch.pixel(p).luminance < 0.2 {
        let (x, y) = (p % sketch.width, p / sketch.width)
        if centres.allSatisfy({ max(abs($0.0 - x), abs($0.1 - y)) >= spacing }) { centres.append((x, y)) }
    }
    for (cx, cy) in centres {
        for y in max(0, cy - 1)...min(sketch.height - 1, cy + 1) {
            for x in max(0, cx - 1)...min(sketch.width - 1, cx + 1) { out.setPixel(x: x, y: y, .white) }
        }
    }
    return (out, centres.count)
}

/// Share of light pixels in regions that hold a hint whose output colour is the true colour (within `tolerance` per channel).
func hintedRegionAccuracy(output: RGBAImage, truth: RGBAImage, sketch: RGBAImage, hints: RGBAImage, tolerance: Int = 24) -> (Double, Int) {
    let regions = lightRegions(sketch)
    var hinted = Set<Int>()
    for p in 0..<hints.pixelCount where hints.pixel(p).a > 0 && regions[p] >= 0 { hinted.insert(regions[p]) }
    var total = 0, correct = 0
    for p in 0..<output.pixelCount where regions[p] >= 0 && hinted.contains(regions[p]) {
        total += 1
        let o = output.pixel(p), t = truth.pixel(p)
        if o.a == 255 && abs(Int(o.r) - Int(t.r)) <= tolerance && abs(Int(o.g) - Int(t.g)) <= tolerance
            && abs(Int(o.b) - Int(t.b)) <= tolerance {
            correct += 1
        }
    }
    return (total > 0 ? Double(correct) / Double(total) : 0, total)
}

@Suite struct BuiltinColorizerTests {
    let engine = BuiltinColorizer()

    func sample(_ name: String) throws -> (sketch: RGBAImage, hints: RGBAImage, truth: RGBAImage) {
        (try Repository.image("Examples/art/\(name)-lineart.png"), try Repository.image("Examples/art/\(name)-hints.png"),
         try Repository.image("Examples/art/\(name)-colored.png"))
    }

    @Test(arguments: ["umbrella", "blocks"])
    func fillsHintedRegionsWithTheirTrueColours(_ name: String) throws {
        let (sketch, hints, truth) = try sample(name)
        let output = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext()).image
        #expect(output.width == sketch.width && output.height == sketch.height)
        let (accuracy, pixels) = hintedRegionAccuracy(output: output, truth: truth, sketch: sketch, hints: hints)
        print("builtin colorize accuracy on \(name): \(String(format: "%.4f", accuracy)) of \(pixels) pixels in hinted regions")
        #expect(pixels > 10_000)
        #expect(accuracy >= 0.98)
        // The background got no hint: it stays transparent.
        #expect(output.pixel(x: 0, y: 0).a == 0)
    }

    /// Every light pixel of the drawing, scribbled region or not: inside the drawing the true colour, outside it (white
    /// in the coloured picture) nothing. Pockets that gap closing cuts off (the umbrella's hub, beside its shaft) count.
    @Test(arguments: ["umbrella", "blocks"])
    func labelsEveryPixelOfTheDrawing(_ name: String) throws {
        let (sketch, hints, truth) = try sample(name)
        let output = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext()).image
        let (share, pixels, holes) = wholeDrawingAccuracy(output: output, truth: truth, sketch: sketch)
        print("builtin colorize accuracy on \(name), every light pixel: \(String(format: "%.4f", share)) of \(pixels); "
              + "\(holes) pixels inside the drawing left empty")
        #expect(share >= 0.98)
        #expect(Double(holes) / Double(pixels) < 0.002)
    }

    /// The sample art with short segments of its lines erased (3x3 squares of paper about every 24 px along them).
    @Test(arguments: ["umbrella", "blocks"])
    func fillsTheSampleArtWithErasedGaps(_ name: String) throws {
        let (sketch, hints, truth) = try sample(name)
        let (gapped, gaps) = eraseGaps(sketch)
        let output = try engine.colorize(ColorizeInput(sketch: gapped, hints: hints), context: RecordingContext()).image
        let (accuracy, _) = hintedRegionAccuracy(output: output, truth: truth, sketch: sketch, hints: hints)
        let (share, pixels, _) = wholeDrawingAccuracy(output: output, truth: truth, sketch: sketch)
        print("builtin colorize accuracy on \(name) with \(gaps) gaps erased: \(String(format: "%.4f", accuracy)) in hinted "
              + "regions, \(String(format: "%.4f", share)) of \(pixels) light pixels")
        #expect(gaps >= 40)
        #expect(accuracy >= 0.97)
        #expect(share >= 0.97)
    }

    /// The umbrella's shaft is a grey (not black) line area: colour does not run under it (no olive where it crosses
    /// the yellow panel), and with the lines drawn over, it keeps its own grey.
    @Test func aGreyLineKeepsItsOwnColour() throws {
        let (sketch, hints, _) = try sample("umbrella")
        let flat = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext()).image
        let lined = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints, options: ["composite_lines": true]),
                                        context: RecordingContext()).image
        let grey = (0..<sketch.pixelCount).filter { sketch.pixel($0) == RGBA(63, 63, 63) }
        let bare = grey.filter { flat.pixel($0).a == 0 }.count
        let kept = grey.filter { lined.pixel($0) == RGBA(63, 63, 63) }.count
        print("builtin colorize, grey shaft: \(bare) of \(grey.count) pixels without colour under them, \(kept) keep their grey")
        #expect(grey.count > 2000)
        #expect(Double(bare) / Double(grey.count) > 0.98)
        #expect(Double(kept) / Double(grey.count) > 0.98)
        // Black lines still get colour under them (no halo at their anti-aliased rims).
        let black = (0..<sketch.pixelCount).filter { sketch.pixel($0).luminance < 0.05 && flat.pixel($0).a > 0 }
        #expect(black.count > 5000)
    }

    @Test func readsLinesOnATransparentLayerTheSameWay() throws {
        let (sketch, hints, truth) = try sample("umbrella")
        var transparent = RGBAImage(width: sketch.width, height: sketch.height)
        for p in 0..<sketch.pixelCount {
            transparent.setPixel(p, RGBA(0, 0, 0, UInt8(((1 - sketch.pixel(p).luminance) * 255).rounded())))
        }
        let output = try engine.colorize(ColorizeInput(sketch: transparent, hints: hints), context: RecordingContext()).image
        let (accuracy, _) = hintedRegionAccuracy(output: output, truth: truth, sketch: sketch, hints: hints)
        print("builtin colorize accuracy, lines on transparent: \(String(format: "%.4f", accuracy))")
        #expect(accuracy >= 0.97)
    }

    @Test func colourRunsUnderTheLinesWithNoHalo() throws {
        let (sketch, hints, _) = try sample("umbrella")
        let output = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext()).image
        // Every dark line pixel between two hinted panels is coloured, so no white seam shows when lines go on top.
        let regions = lightRegions(sketch)
        var linePixelsInside = 0, coloured = 0
        for y in 1..<(sketch.height - 1) {
            for x in 1..<(sketch.width - 1) {
                let p = y * sketch.width + x
                guard regions[p] < 0 else { continue }
                // A line pixel with coloured output on both its left and right sides: it lies between two fills.
                if output.pixel(p - 3 < 0 ? p : p - 3).a == 255 && output.pixel(min(p + 3, sketch.pixelCount - 1)).a == 255 {
                    linePixelsInside += 1
                    if output.pixel(p).a == 255 { coloured += 1 }
                }
            }
        }
        #expect(linePixelsInside > 1000)
        #expect(Double(coloured) / Double(linePixelsInside) > 0.99)
    }

    @Test func closesSmallGapsButNotWithZeroTolerance() throws {
        // A square outline with a 3-pixel gap in its right side, a red scribble inside.
        var sketch = RGBAImage(width: 64, height: 64, fill: .white)
        for i in 16..<48 {
            for t in 0..<2 {
                sketch.setPixel(x: i, y: 16 + t, .black)
                sketch.setPixel(x: i, y: 46 + t, .black)
                sketch.setPixel(x: 16 + t, y: i, .black)
                if !(30..<33).contains(i) { sketch.setPixel(x: 46 + t, y: i, .black) }
            }
        }
        var hints = RGBAImage(width: 64, height: 64)
        for x in 24..<30 { hints.setPixel(x: x, y: 30, RGBA(220, 0, 0)) }
        let closed = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints, options: ["gap_closing": 2]),
                                         context: RecordingContext()).image
        #expect(closed.pixel(x: 30, y: 30) == RGBA(220, 0, 0))
        #expect(closed.pixel(x: 60, y: 31).a == 0, "colour leaked through a gap the tolerance should close")
        let open = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints, options: ["gap_closing": 0]),
                                       context: RecordingContext()).image
        #expect(open.pixel(x: 60, y: 31) == RGBA(220, 0, 0), "with no gap closing the fill should escape")
    }

    @Test func takesColoursFromAReferenceWhenThereAreNoHints() throws {
        let (sketch, _, truth) = try sample("umbrella")
        let output = try engine.colorize(ColorizeInput(sketch: sketch, reference: truth), context: RecordingContext()).image
        // Measure over every light region: the reference palette should give each its true colour.
        let regions = lightRegions(sketch)
        var total = 0, close = 0
        for p in 0..<sketch.pixelCount where regions[p] >= 0 {
            total += 1
            if output.pixel(p).a == 255 && output.pixel(p).distanceSquared(to: truth.pixel(p)) <= 3 * 30 * 30 { close += 1 }
        }
        let share = Double(close) / Double(total)
        print("builtin colorize from reference palette: \(String(format: "%.4f", share)) of light pixels within 30 per channel")
        #expect(share >= 0.9)
    }

    @Test func compositesTheLinesOnRequest() throws {
        let (sketch, hints, _) = try sample("umbrella")
        let flat = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext()).image
        let lined = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints, options: ["composite_lines": true]),
                                        context: RecordingContext()).image
        // Find a solid line pixel: dark in the sketch; dark in the lined output, coloured in the flat one.
        let p = try #require((0..<sketch.pixelCount).first { sketch.pixel($0).luminance < 0.05 && flat.pixel($0).a == 255 })
        #expect(lined.pixel(p).luminance < 0.1)
        #expect(flat.pixel(p).luminance > 0.1)
    }

    @Test func rejectsUnknownOrOutOfRangeOptions() {
        let sketch = RGBAImage(width: 8, height: 8, fill: .white)
        for options: [String: JSONValue] in [["gap_closing": 99], ["palette": 3], ["line_threshold": "high"]] {
            #expect(throws: ProtocolError.self) {
                try engine.colorize(ColorizeInput(sketch: sketch, options: options), context: RecordingContext())
            }
        }
    }

    @Test func reportsProgressAndStopsWhenCancelled() throws {
        let (sketch, hints, _) = try sample("umbrella")
        let context = RecordingContext()
        _ = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: context)
        let fractions = context.reports.map(\.fraction)
        #expect(fractions.first == 0 && fractions.last == 1)
        #expect(fractions == fractions.sorted())
        #expect(throws: ProtocolError(.cancelled, "cancelled by the test")) {
            try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext(cancelAfter: 2))
        }
    }

    /// Line analysis and the fills look for a cancel at least once per row, not only between stages (issue 10).
    @Test func eachStageLooksForACancelEveryRow() throws {
        let (sketch, hints, _) = try sample("umbrella")
        let context = RecordingContext()
        _ = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: context)
        let checks = context.checksAtReport, stages = context.reports.map(\.stage)
        #expect(stages.prefix(3) == ["lines", "regions", "fill"])
        #expect(checks[1] - checks[0] >= 2 * sketch.height, "line analysis checked \(checks[1] - checks[0]) times")
        let stopped = RecordingContext(cancelAfterChecks: sketch.height)
        #expect(throws: ProtocolError(.cancelled, "cancelled by the test")) {
            try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: stopped)
        }
        #expect(stopped.reports.map(\.stage) == ["lines"])
    }
}

/// With PAINTS_TEST_OUT set, the colorizer's outputs on the sample art are written there as PNGs to look at.
@Test func writesSampleOutputsWhenAsked() throws {
    guard let dir = ProcessInfo.processInfo.environment["PAINTS_TEST_OUT"] else { return }
    for name in ["umbrella", "blocks"] {
        let sketch = try Repository.image("Examples/art/\(name)-lineart.png")
        let hints = try Repository.image("Examples/art/\(name)-hints.png")
        for lined in [false, true] {
            let out = try BuiltinColorizer().colorize(ColorizeInput(sketch: sketch, hints: hints, options: ["composite_lines": .bool(lined)]),
                                                      context: RecordingContext()).image
            try PNGCodec.write(out, path: "\(dir)/\(name)-\(lined ? "colorized" : "flat").png")
        }
    }
}
