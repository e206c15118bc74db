// PaintsEngine/BuiltinColorizer: LazyBrush-style flat colouring of line art from colour scribbles, with no model files.
import PaintsProtocol
import PaintsRaster
import PaintsTensor

/// Colours line art the way Krita's Colorize Mask does, without a model:
///
/// 1. Line strength is read from the sketch (dark on white or opaque on transparent); lines above `line_threshold` are
///    grown by `gap_closing` pixels so small gaps in the drawing do not let colour leak, and the enclosed regions found.
/// 2. Each region takes the colours of the scribbles inside it; several colours in one region split it along the
///    cheapest paths, where faint lines cost more to cross.
/// 3. Regions without a scribble stay transparent, or, given a `reference`, take the reference palette colour that
///    covers most of them.
/// 4. Colour then runs under the lines and the grown zone from both sides until the fronts meet, so the fill meets
///    the line with no halo.
///
/// Output: the flat-colour layer; with `composite_lines` the lines are drawn over it.
/// The `colorize` half of `BuiltinEngine`.
public struct BuiltinColorizer: Sendable {
    public static let options: [EngineOption] = [
        EngineOption("gap_closing", .integer, default: 2, minimum: 0, maximum: 16,
                     summary: "pixels lines are grown by, closing gaps up to about twice this wide"),
        EngineOption("line_threshold", .number, default: 0.35, minimum: 0.01, maximum: 0.99,
                     summary: "line strength (darkness times opacity) above which a pixel is line"),
        EngineOption("composite_lines", .boolean, default: false, summary: "draw the line art over the flat colours"),
        EngineOption("palette_size", .integer, default: 12, minimum: 2, maximum: 32,
                     summary: "colours taken from the reference for regions without a scribble"),
    ]

    public static let capabilities = MethodCapabilities(method: .colorize, inputs: ["sketch", "hints", "reference"],
                                                       options: options)

    public init() {}

    /// Memory of a colorize per sketch pixel: line strength, regions, labels, distances and costs (about 20 bytes),
    /// the fill's bucket queues (up to 8 per pixel), masks, the cost planes and the output. `make bench` prints this
    /// estimate beside the peak measured.
    public static let bytesPerPixel = 48

    struct Settings {
        var gapClosing = 2
        var lineThreshold: Float = 0.35
        var compositeLines = false
        var paletteSize = 12

        init(_ options: [String: JSONValue]) throws(ProtocolError) {
            var r = ParamReader(options, path: "options.")
            gapClosing = try r.int("gap_closing", in: 0...16) ?? gapClosing
            lineThreshold = Float(try r.double("line_threshold", in: 0.01...0.99) ?? Double(lineThreshold))
            compositeLines = try r.bool("composite_lines") ?? compositeLines
            paletteSize = try r.int("palette_size", in: 2...32) ?? paletteSize
            try r.finish()
        }
    }

    public func colorize(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> ColorizeOutput {
        let settings = try Settings(input.options)
        let sketch = input.sketch
        let (width, height, n) = (sketch.width, sketch.height, sketch.pixelCount)
        let steps = 4
        context.report(stage: "lines", step: 0, steps: steps, fraction: 0, preview: nil)
        let art = try LineArt(sketch, threshold: settings.lineThreshold, gapClosing: settings.gapClosing, context: context)
        try context.checkCancellation()
        context.report(stage: "regions", step: 1, steps: steps, fraction: 0.3, preview: nil)

        // Colour table: index 0 is "transparent"; hint colours and reference palette entries follow.
        var colours: [RGBA] = [.transparent]
        var colourIndex: [RGBA: Int32] = [:]
        func index(of colour: RGBA) -> Int32 {
            if let i = colourIndex[colour] { return i }
            colours.append(colour)
            colourIndex[colour] = Int32(colours.count - 1)
            return Int32(colours.count - 1)
        }

        // Seeds: scribble pixels inside regions. Scribbles over the barrier zone are ignored (they would paint the
        // wrong side of a line).
        var labels = [Int32](repeating: -1, count: n)
        var hinted = [Bool](repeating: false, count: art.regionCount)
        var hintPixels = 0
        if let hints = input.hints {
            for p in 0..<n where hints.pixels[p * 4 + 3] > 0 && art.region[p] >= 0 {
                var c = hints.pixel(p)
                c.a = 255
                labels[p] = index(of: c)
                hinted[Int(art.region[p])] = true
                hintPixels += 1
            }
        }
        // Regions with no scribble: a reference palette colour, else transparent.
        var regionColour = [Int32](repeating: 0, count: art.regionCount)
        var paletteInfo: [JSONValue] = []
        if let reference = input.reference {
            let palette = Palette(reference.resized(width: width, height: height), size: settings.paletteSize, seed: input.seed)
            try context.checkCancellation()
            paletteInfo = palette.colours.map { .string($0.description) }
            var votes = [[Int]](repeating: [Int](repeating: 0, count: palette.colours.count), count: art.regionCount)
            for p in 0..<n {
                let r = art.region[p]
                if r >= 0, !hinted[Int(r)], let entry = palette.entry[p] { votes[Int(r)][entry] += 1 }
            }
            for r in 0..<art.regionCount where !hinted[r] {
                if let best = votes[r].indices.max(by: { votes[r][$0] < votes[r][$1] }), votes[r][best] > 0 {
                    regionColour[r] = index(of: palette.colours[best])
                }
            }
        }
        for p in 0..<n where art.region[p] >= 0 && !hinted[Int(art.region[p])] {
            labels[p] = regionColour[Int(art.region[p])]
        }
        try context.checkCancellation()
        context.report(stage: "fill", step: 2, steps: steps, fraction: 0.45, preview: nil)

        // Within each region: nearest scribble, crossing faint lines costs more.
        let maxCost = 9
        let threshold = settings.lineThreshold
        let cost = art.strength.map { UInt8(1 + min(8, Int($0 / threshold * 8))) }
        let region = art.region
        try LineArt.propagate(labels: &labels, width: width, height: height, cost: cost, maxCost: maxCost,
                              context: context) { p, q in
            region[q] >= 0 && region[q] == region[p]
        }
        try context.checkCancellation()
        // Under the lines: every region's colour (transparent included) advances through the barrier zone at equal
        // speed, so two colours meet in the middle of the line between them.
        let unitCost = [UInt8](repeating: 1, count: n)
        try LineArt.propagate(labels: &labels, width: width, height: height, cost: unitCost, maxCost: 1,
                              context: context) { _, q in
            region[q] < 0
        }
        try context.checkCancellation()
        context.report(stage: "compose", step: 3, steps: steps, fraction: 0.85, preview: nil)

        var out = RGBAImage(width: width, height: height)
        var filled = 0
        for p in 0..<n where labels[p] > 0 {
            out.setPixel(p, colours[Int(labels[p])])
            filled += 1
        }
        if settings.compositeLines {
            for p in 0..<n where art.strength[p] > 0 {
                var line = sketch.pixel(p)
                line.a = UInt8(max(0, min(255, (art.strength[p] * 255).rounded())))
                out.setPixel(p, line.over(out.pixel(p)))
            }
        }
        context.report(stage: "compose", step: steps, steps: steps, fraction: 1, preview: nil)
        var info: [String: JSONValue] = [
            "regions": JSONValue(art.regionCount), "hint_pixels": JSONValue(hintPixels),
            "hinted_regions": JSONValue(hinted.filter { $0 }.count),
            "filled_fraction": JSONValue(Double(filled) / Double(n)),
        ]
        if !paletteInfo.isEmpty { info["reference_palette"] = .array(paletteInfo) }
        return ColorizeOutput(image: out, info: info)
    }
}

/// A small colour palette of an image (k-means on a sample), and each pixel's nearest entry.
struct Palette {
    let colours: [RGBA]
    /// Palette index per pixel; nil for (nearly) transparent pixels.
    let entry: [Int?]

    init(_ image: RGBAImage, size: Int, seed: Int) {
        var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: seed))
        let opaque = (0..<image.pixelCount).filter { image.pixels[$0 * 4 + 3] >= 128 }
        guard !opaque.isEmpty else {
            colours = []
            entry = Array(repeating: nil, count: image.pixelCount)
            return
        }
        let sample = (0..<min(4096, opaque.count)).map { _ in image.pixel(opaque[Int(rng.next() % UInt64(opaque.count))]) }
        var centres = (0..<min(size, sample.count)).map { sample[$0 * sample.count / min(size, sample.count)] }
        for _ in 0..<12 {
            var sums = [(Int, Int, Int, Int)](repeating: (0, 0, 0, 0), count: centres.count)
            for c in sample {
                let k = Self.nearest(c, in: centres)
                sums[k] = (sums[k].0 + Int(c.r), sums[k].1 + Int(c.g), sums[k].2 + Int(c.b), sums[k].3 + 1)
            }
            for k in centres.indices where sums[k].3 > 0 {
                let s = sums[k]
                centres[k] = RGBA(UInt8(s.0 / s.3), UInt8(s.1 / s.3), UInt8(s.2 / s.3))
            }
        }
        colours = centres
        entry = (0..<image.pixelCount).map { p in
            image.pixels[p * 4 + 3] >= 128 ? Self.nearest(image.pixel(p), in: centres) : nil
        }
    }

    static func nearest(_ c: RGBA, in centres: [RGBA]) -> Int {
        var best = 0, bestDistance = Int.max
        for (k, centre) in centres.enumerated() {
            let d = c.distanceSquared(to: centre)
            if d < bestDistance { (best, bestDistance) = (k, d) }
        }
        return best
    }
}
