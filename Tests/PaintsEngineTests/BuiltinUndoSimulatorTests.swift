// The drawing-process simulator: exact ends, monotone progress, determinism, cancellation.
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

    @Test func stepZeroIsTheInputAndStep999ABlankCanvas() throws {
        let picture = try Repository.image("Examples/art/umbrella-colored.png")
        let frames = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [999, 0]), context: RecordingContext())
        #expect(frames.map(\.step) == [999, 0])
        #expect(frames[1].image == picture)
        #expect(frames[0].image == RGBAImage(width: picture.width, height: picture.height, fill: .white))
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

    @Test func aTransparentLayerStartsTransparent() throws {
        var layer = RGBAImage(width: 32, height: 32)
        for x in 4..<28 { layer.setPixel(x: x, y: 16, .black) }
        let frames = try engine.undoPreview(UndoPreviewInput(image: layer, steps: [999]), context: RecordingContext())
        #expect(frames[0].image == RGBAImage(width: 32, height: 32))
    }
}
