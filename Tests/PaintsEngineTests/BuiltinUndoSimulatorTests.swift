// The drawing-process simulator: exact ends, monotone progress, strokes along the lines, layers with transparency,
// determinism, cancellation.
import Foundation
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

/// Mean absolute channel difference between two images of one size.
func meanDifference(_ a: RGBAImage, _ b: RGBAImage) -> Double {
    var sum = 0
    for i in 0..<a.pixels.count { sum += abs(Int(a.pixels[i]) - Int(b.pixels[i])) }
    return Double(sum) / Double(a.pixels.count)
}

@Suite struct BuiltinUndoSimulatorTests {
    let engine = BuiltinUndoSimulator()

    /// Step 999 is the first stroke on a blank canvas (Paints-UNDO's almost blank canvas), not the blank canvas
    /// itself, which `undo.sequence` gives as its frame 1000.
    @Test func stepZeroIsTheInputAndStep999TheFirstStroke() throws {
        let picture = try Repository.image("Examples/art/umbrella-colored.png")
        let frames = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [999, 0]), context: RecordingContext())
        #expect(frames.map(\.step) == [999, 0])
        #expect(frames[1].image == picture)
        let first = frames[0].image
        let marked = (0..<first.pixelCount).filter { first.pixel($0) != .white }
        print("undo simulator step 999: \(marked.count) of \(first.pixelCount) pixels drawn")
        #expect(!marked.isEmpty, "step 999 is the blank canvas")
        #expect(marked.count < first.pixelCount / 200, "step 999 is more than a first stroke")
        #expect(marked.allSatisfy { first.pixel($0).luminance > 0.5 }, "the first stroke is a light rough line")
    }

    /// Clean lines appear stroke by stroke along the lines: the part of a stroke drawn so far is one connected piece
    /// (not horizontal bands, which cut every line crossing them), and it ends across the line, not along a row.
    @Test func strokesAreDrawnAlongTheLines() throws {
        let picture = try Repository.image("Examples/art/umbrella-colored.png")
        let (width, height) = (picture.width, picture.height)
        let frames = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [800, 760, 0], seed: 5),
                                            context: RecordingContext())
        // Line work: dark and grey, not a dark colour fill such as the blue panels.
        func ink(_ c: RGBA) -> Bool { c.luminance < 0.25 && Int(max(c.r, c.g, c.b)) - Int(min(c.r, c.g, c.b)) < 40 }
        func darkPieces(_ image: RGBAImage) -> (pieces: Int, cut: Int, pixels: Int) {
            let dark = (0..<image.pixelCount).map { ink(image.pixel($0)) }
            let finished = (0..<picture.pixelCount).map { ink(picture.pixel($0)) }
            var label = [Int](repeating: -1, count: dark.count), pieces = 0
            for start in 0..<dark.count where dark[start] && label[start] < 0 {
                var stack = [start], size = 0
                label[start] = pieces
                while let p = stack.popLast() {
                    size += 1
                    let (x, y) = (p % width, p / width)
                    for dy in -1...1 {
                        for dx in -1...1 where (0..<width).contains(x + dx) && (0..<height).contains(y + dy) {
                            let q = p + dy * width + dx
                            if dark[q] && label[q] < 0 { label[q] = pieces; stack.append(q) }
                        }
                    }
                }
                if size >= 12 { pieces += 1 }
            }
            // The frontier: drawn line pixels next to line pixels not drawn yet; the most of it in any one row.
            var frontierInRow = [Int](repeating: 0, count: height)
            for p in 0..<dark.count where dark[p] {
                let (x, y) = (p % width, p / width)
                let next = [y > 0 ? p - width : -1, y + 1 < height ? p + width : -1, x > 0 ? p - 1 : -1, x + 1 < width ? p + 1 : -1]
                if next.contains(where: { $0 >= 0 && finished[$0] && !dark[$0] }) { frontierInRow[y] += 1 }
            }
            return (pieces, frontierInRow.max() ?? 0, dark.filter { $0 }.count)
        }
        let whole = darkPieces(frames[2].image)
        for frame in frames.prefix(2) {
            let part = darkPieces(frame.image)
            print("undo simulator step \(frame.step): \(part.pixels) of \(whole.pixels) line pixels drawn in \(part.pieces) pieces "
                  + "(finished: \(whole.pieces)); at most \(part.cut) pixels of the drawing front in one row")
            #expect(part.pixels > whole.pixels / 5 && part.pixels < whole.pixels * 9 / 10)
            #expect(part.pieces <= whole.pieces + 2)
            // A horizontal cut-off across the drawing puts the front of many lines in one row.
            #expect(part.cut <= 16)
        }
    }

    /// A layer with transparency (the colour layer a colorize adds) is rebuilt as a layer: transparent where it is,
    /// its colour areas painted one by one, so the default keyframes are not empty.
    @Test func aLayerWithTransparencyGetsFramesOfItsOwn() throws {
        let sketch = try Repository.image("Examples/art/umbrella-lineart.png")
        let hints = try Repository.image("Examples/art/umbrella-hints.png")
        let layer = try BuiltinColorizer().colorize(ColorizeInput(sketch: sketch, hints: hints), context: RecordingContext()).image
        let opaque = (0..<layer.pixelCount).filter { layer.pixel($0).a == 255 }.count
        let steps = [400, 600, 800, 900, 950, 999]
        let frames = try engine.undoPreview(UndoPreviewInput(image: layer, steps: steps), context: RecordingContext())
        let shares = frames.map { f in Double((0..<f.image.pixelCount).filter { f.image.pixel($0).a > 0 }.count) / Double(opaque) }
        let outside = frames.map { f in (0..<f.image.pixelCount).filter { f.image.pixel($0).a > 0 && layer.pixel($0).a == 0 }.count }
        print("undo simulator on a colour layer, painted share by step: "
              + zip(steps, shares).map { "\($0)=\(String(format: "%.2f", $1))" }.joined(separator: " "))
        #expect(shares[0] > 0.9)
        #expect(shares[2] > 0.1)
        #expect(shares[5] > 0)
        for i in 1..<shares.count { #expect(shares[i] <= shares[i - 1] + 1e-9) }
        #expect(outside.allSatisfy { $0 < opaque / 100 }, "paint where the layer is transparent: \(outside)")
    }

    @Test func laterStepsNeverLookMoreFinished() throws {
        let picture = try Repository.image("Examples/art/umbrella-colored.png")
        let steps = Array(stride(from: 0, through: 999, by: 37)) + [999]
        let frames = try engine.undoPreview(UndoPreviewInput(image: picture, steps: steps, seed: 3), context: RecordingContext())
        let differences = frames.map { meanDifference($0.image, picture) }
        print("undo simulator difference to the finished picture by step: " +
              zip(steps, differences).map { "\($0)=\(String(format: "%.1f", $1))" }.joined(separator: " "))
        for i in 1..<differences.count {
            #expect(differences[i] + 0.05 >= differences[i - 1], "step \(steps[i]) looks more finished than \(steps[i - 1])")
        }
        #expect(differences.last! > 20)
    }

    @Test func stagesComeInAnIllustratorsOrder() throws {
        let picture = try Repository.image("Examples/art/umbrella-colored.png")
        let frames = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [900, 750, 450]), context: RecordingContext())
        func colourfulShare(_ image: RGBAImage) -> Double {
            Double((0..<image.pixelCount).filter { let c = image.pixel($0); return max(c.r, c.g, c.b) - min(c.r, c.g, c.b) > 60 }.count)
                / Double(image.pixelCount)
        }
        func darkShare(_ image: RGBAImage) -> Double {
            Double((0..<image.pixelCount).filter { image.pixel($0).luminance < 0.25 }.count) / Double(image.pixelCount)
        }
        // Rough lines only: neither colour nor dark ink yet.
        #expect(colourfulShare(frames[0].image) < 0.01)
        // Clean line art: dark lines, no colour.
        #expect(darkShare(frames[1].image) > darkShare(frames[0].image))
        #expect(colourfulShare(frames[1].image) < 0.01)
        // Flat colours have arrived.
        #expect(colourfulShare(frames[2].image) > 0.1)
    }

    @Test func isDeterministicPerSeed() throws {
        let picture = try Repository.image("Examples/art/blocks-colored.png")
        let a = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [880, 500], seed: 11), context: RecordingContext())
        let b = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [880, 500], seed: 11), context: RecordingContext())
        let c = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [880, 500], seed: 12), context: RecordingContext())
        #expect(a.map(\.image) == b.map(\.image))
        #expect(a.map(\.image) != c.map(\.image))
    }

    @Test func reportsEachFrameAndStopsWhenCancelled() throws {
        let picture = try Repository.image("Examples/art/blocks-colored.png")
        let context = RecordingContext()
        _ = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [100, 200, 300]), context: context)
        #expect(context.reports.filter { $0.stage == "frame" && $0.hasPreview }.count == 3)
        #expect(context.reports.last?.fraction == 1)
        #expect(throws: ProtocolError.self) {
            try engine.undoPreview(UndoPreviewInput(image: picture, steps: [100, 200, 300]), context: RecordingContext(cancelAfter: 2))
        }
    }

    /// The analysis of a large picture takes seconds in a debug build: it must look for a cancel at least once per row
    /// (issue 10: a killed client's 2048x2048 job ran its whole analysis), and stop there when asked.
    @Test func analysisAndEachFrameLookForACancelEveryRow() throws {
        let picture = try Repository.image("Examples/art/blocks-colored.png")
        let context = RecordingContext()
        _ = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [500, 100]), context: context)
        let checks = context.checksAtReport
        #expect(context.reports.first?.stage == "analyse" && context.reports.count == 3)
        // Analysis: between the "analyse" report and the first frame; each frame: between two frame reports.
        #expect(checks[1] - checks[0] >= 2 * picture.height, "analysis checked \(checks[1] - checks[0]) times")
        #expect(checks[2] - checks[1] >= picture.height, "a frame checked \(checks[2] - checks[1]) times")
        let stopped = RecordingContext(cancelAfterChecks: picture.height)
        #expect(throws: ProtocolError(.cancelled, "cancelled by the test")) {
            try engine.undoPreview(UndoPreviewInput(image: picture, steps: [500, 100]), context: stopped)
        }
        #expect(stopped.reports.map(\.stage) == ["analyse"])
    }

    /// Noise (every pixel its own colour area, lines everywhere) and a checkerboard: the analysis copes.
    @Test func copesWithNoiseAndCheckerboards() throws {
        var rng = SystemRandomNumberGenerator()
        var noise = RGBAImage(width: 61, height: 47)
        for p in 0..<noise.pixelCount {
            noise.setPixel(p, RGBA(UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng),
                                   UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng)))
        }
        var checker = RGBAImage(width: 33, height: 65, fill: .white)
        for p in 0..<checker.pixelCount where (p % 33 + p / 33) % 2 == 0 { checker.setPixel(p, .black) }
        for picture in [noise, checker] {
            let frames = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [999, 500, 0]), context: RecordingContext())
            #expect(frames[2].image == picture)
            _ = try BuiltinColorizer().colorize(ColorizeInput(sketch: picture, hints: picture), context: RecordingContext())
        }
    }

    @Test func aTransparentLayerStartsTransparent() throws {
        var layer = RGBAImage(width: 64, height: 64)
        for x in 4..<60 { layer.setPixel(x: x, y: 32, .black) }
        let frames = try engine.undoPreview(UndoPreviewInput(image: layer, steps: [999, 500]), context: RecordingContext())
        let first = frames[0].image
        let marked = (0..<first.pixelCount).filter { first.pixel($0).a > 0 }
        // The first stroke: part of the line, light and translucent, on a transparent canvas.
        #expect(!marked.isEmpty && marked.count < 56)
        #expect(marked.allSatisfy { first.pixel($0).a < 128 })
        // Later the line is drawn in full, and the layer stays transparent around it.
        #expect(frames[1].image == layer)
    }
}

/// With PAINTS_TEST_OUT set, the simulator's default keyframes of the sample picture and of a colorized layer are
/// written there as PNGs to look at.
@Test func writesSampleFramesWhenAsked() throws {
    guard let dir = ProcessInfo.processInfo.environment["PAINTS_TEST_OUT"] else { return }
    let picture = try Repository.image("Examples/art/umbrella-colored.png")
    let layer = try BuiltinColorizer().colorize(
        ColorizeInput(sketch: try Repository.image("Examples/art/umbrella-lineart.png"),
                      hints: try Repository.image("Examples/art/umbrella-hints.png")), context: RecordingContext()).image
    let steps = [999, 975, 950, 900, 850, 800, 700, 600, 400, 200]
    for (name, image) in [("picture", picture), ("layer", layer)] {
        let frames = try BuiltinUndoSimulator().undoPreview(UndoPreviewInput(image: image, steps: steps), context: RecordingContext())
        for frame in frames { try PNGCodec.write(frame.image, path: "\(dir)/undo-\(name)-\(frame.step).png") }
    }
}
