// The line-art ControlNet's control image: white lines on black from dark-on-white or dark-on-transparent line art,
// anti-aliasing kept, resized by area.
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct LineArtHintTests {
    /// The control image's value at (x, y), after checking the three channels hold the same grey.
    static func value(_ t: Tensor, x: Int, y: Int) -> Float {
        let (h, w) = (t.shape[2], t.shape[3]), p = y * w + x
        let v = t.data[p]
        #expect(t.data[h * w + p] == v && t.data[2 * h * w + p] == v, "channels differ at \(x), \(y)")
        return v
    }

    /// A 64x64 drawing: a vertical line 4 px wide at x 8...11, a 1-px line at x 24, and a 1-px anti-aliased line at
    /// x 40 (full ink) with rims of ink 128/255 either side; `ink(k)` draws a pixel of ink k/255.
    static func lines(_ ink: (UInt8) -> RGBA, paper: RGBA) -> RGBAImage {
        var sketch = RGBAImage(width: 64, height: 64, fill: paper)
        for y in 0..<64 {
            for x in 8..<12 { sketch.setPixel(x: x, y: y, ink(255)) }
            sketch.setPixel(x: 24, y: y, ink(255))
            sketch.setPixel(x: 39, y: y, ink(128))
            sketch.setPixel(x: 40, y: y, ink(255))
            sketch.setPixel(x: 41, y: y, ink(128))
        }
        return sketch
    }

    /// Grey 255 - k on white paper; black at opacity k on a transparent layer.
    static let onWhite = lines({ RGBA(255 - $0, 255 - $0, 255 - $0) }, paper: .white)
    static let onTransparent = lines({ RGBA(0, 0, 0, $0) }, paper: .transparent)

    @Test func isWhiteLinesOnBlackWithTheAntiAliasingKept() throws {
        let hint = try LineArtHint.controlImage(Self.onWhite, width: 64, height: 64, context: RecordingContext())
        #expect(hint.shape == [1, 3, 64, 64])
        for y in [0, 31, 63] {
            #expect(Self.value(hint, x: 0, y: y) == 0)
            #expect(Self.value(hint, x: 30, y: y) == 0)
            #expect(Self.value(hint, x: 9, y: y) == 1)
            #expect(Self.value(hint, x: 40, y: y) == 1)
            // 128/255: the rim keeps its value.
            #expect(abs(Self.value(hint, x: 39, y: y) - 0.502) < 0.002)
            #expect(abs(Self.value(hint, x: 41, y: y) - 0.502) < 0.002)
        }
    }

    @Test func linesOnWhiteAndOnTransparentGiveTheSameImage() throws {
        for (w, h) in [(64, 64), (16, 16), (24, 40)] {
            let white = try LineArtHint.controlImage(Self.onWhite, width: w, height: h, context: RecordingContext())
            let clear = try LineArtHint.controlImage(Self.onTransparent, width: w, height: h, context: RecordingContext())
            #expect(white.shape == clear.shape)
            let worst = zip(white.data, clear.data).map { abs($0 - $1) }.max() ?? 1
            #expect(worst < 1e-5, "\(w)x\(h): differ by up to \(worst)")
            #expect(white.data.contains { $0 > 0.2 && $0 < 0.8 } || w == 64)
        }
    }

    /// A quarter of the size: each output pixel averages a 4x4 block. The 4-px line (x 8...11) fills block 2: 1.0; the
    /// 1-px line (x 24) covers a quarter of block 6: 0.25; the anti-aliased line spreads over blocks 9 and 10.
    @Test func shrinksByAreaNotByPickingPixels() throws {
        let hint = try LineArtHint.controlImage(Self.onWhite, width: 16, height: 16, context: RecordingContext())
        #expect(hint.shape == [1, 3, 16, 16])
        for y in 0..<16 {
            #expect(abs(Self.value(hint, x: 2, y: y) - 1) < 1e-5)
            #expect(abs(Self.value(hint, x: 6, y: y) - 0.25) < 1e-5)
            #expect(abs(Self.value(hint, x: 9, y: y) - 0.502 / 4) < 0.001)  // x 36...39: the rim at 39
            #expect(abs(Self.value(hint, x: 10, y: y) - (1 + 0.502) / 4) < 0.001)  // x 40...43: the line and a rim
            for x in [0, 1, 3, 5, 7, 15] { #expect(Self.value(hint, x: x, y: y) == 0) }
        }
        // A size that does not divide: the ink of a row is kept (area average), 64 px to 24 is 8/3 px per output.
        let odd = try LineArtHint.controlImage(Self.onWhite, width: 24, height: 24, context: RecordingContext())
        let rowInk = (0..<24).map { Self.value(odd, x: $0, y: 11) }.reduce(0, +) * 64 / 24
        #expect(abs(rowInk - (4 + 1 + 1 + 2 * 0.502)) < 0.01)
    }

    /// Growing is bilinear: a single ink pixel becomes a smooth bump with values in between.
    @Test func growsBilinearly() throws {
        var dot = RGBAImage(width: 4, height: 4, fill: .white)
        dot.setPixel(x: 1, y: 1, .black)
        let hint = try LineArtHint.controlImage(dot, width: 16, height: 16, context: RecordingContext())
        #expect(hint.data.allSatisfy { $0 >= 0 && $0 <= 1 })
        // Canvas x 6 sits at (6 + 0.5) / 4 - 0.5 = 1.125: 0.875 of pixel 1 along each axis.
        #expect(abs(Self.value(hint, x: 6, y: 6) - 0.875 * 0.875) < 1e-5)
        #expect(Self.value(hint, x: 15, y: 15) == 0)
    }

    @Test func looksForACancelEveryRow() throws {
        let context = RecordingContext()
        _ = try LineArtHint.controlImage(Self.onWhite, width: 16, height: 16, context: context)
        #expect(context.checks >= 64)
        #expect(throws: ProtocolError(.cancelled, "cancelled by the test")) {
            try LineArtHint.controlImage(Self.onWhite, width: 16, height: 16, context: RecordingContext(cancelAfterChecks: 10))
        }
    }
}
