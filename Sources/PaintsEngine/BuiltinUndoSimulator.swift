// PaintsEngine/BuiltinUndoSimulator: a classical drawing-process simulator for undo-step previews, with no model files.
import PaintsProtocol
import PaintsRaster
import PaintsTensor

/// Shows what a finished picture plausibly looked like `step` operations earlier (0 = finished, 999 = blank canvas),
/// rebuilding it in the order an illustrator works:
///
/// | completion | stage |
/// |---|---|
/// | 0.00-0.15 | rough lines: light, slightly offset strokes, line by line, top to bottom |
/// | 0.15-0.30 | clean line art replaces the rough lines |
/// | 0.30-0.60 | flat colours, region by region, largest first |
/// | 0.60-0.85 | shading: each region gets the picture's smooth deviation from its flat colour |
/// | 0.85-1.00 | final details: the shaded picture sharpens to the original |
///
/// where completion = 1 - step/999. The order of strokes and regions depends on the seed; a later step never shows
/// more of any stage than an earlier one. Step 0 returns the input exactly; step 999 a blank canvas (white, or
/// transparent for a layer that is not opaque).
/// The `undo.preview` half of `BuiltinEngine`.
public struct BuiltinUndoSimulator: Sendable {
    public static let capabilities = MethodCapabilities(method: .undoPreview, inputs: ["image", "steps", "count"], options: [])
    public static let sequenceCapabilities = MethodCapabilities(method: .undoSequence, inputs: ["image", "steps", "count"], options: [])

    public init() {}

    /// Stage boundaries in completion (0 = blank, 1 = finished).
    static let roughEnd: Float = 0.15, linesEnd: Float = 0.30, flatsEnd: Float = 0.60, shadingEnd: Float = 0.85

    /// Memory of the analysis (`DrawingPlan` and its temporaries) and of the frame being drawn, per pixel: eight
    /// 4-byte planes kept, about as many made and dropped while analysing, and the 4-byte frame. `make bench` prints
    /// this estimate beside the peak measured.
    public static let bytesPerPixel = 88

    /// Emits one frame per step, in the order asked.
    public func undoPreview(_ input: UndoPreviewInput, context: JobContext, emit: UndoFrameSink) throws(ProtocolError) {
        try ParamReader(input.options, path: "options.").finish()
        let total = input.steps.count + 1
        context.report(stage: "analyse", step: 0, steps: total, fraction: 0, preview: nil)
        let plan = try DrawingPlan(input.image, seed: input.seed, context: context)
        // A step asked twice in a row is drawn once; only the last frame is kept.
        var last: UndoFrame?
        for (i, step) in input.steps.enumerated() {
            let frame: UndoFrame
            if let last, last.step == step {
                frame = last
            } else {
                frame = UndoFrame(step: step, image: try plan.render(completion: 1 - Float(step) / 999, context: context))
            }
            last = frame
            try context.checkCancellation()
            context.report(stage: "frame", step: i + 1, steps: input.steps.count,
                           fraction: Double(i + 2) / Double(total), preview: frame.image)
            try emit(frame)
        }
    }

    /// Every frame at once (tests, benchmarks).
    public func undoPreview(_ input: UndoPreviewInput, context: JobContext) throws(ProtocolError) -> [UndoFrame] {
        var frames: [UndoFrame] = []
        try undoPreview(input, context: context) { frame throws(ProtocolError) in frames.append(frame) }
        return frames
    }
}

/// Everything about a picture the simulator needs, computed once per request.
struct DrawingPlan {
    let original: RGBAImage
    let blank: RGBA
    /// Pixels that are line work, with strength 0...1.
    let lineStrength: [Float]
    /// Per line pixel: when (0..<1 of a line stage) it is drawn; greater than 1 for pixels that are not line.
    let strokeOrder: [Float]
    /// Per-pixel offset of the rough stroke it belongs to.
    let roughOffset: [Int32]
    /// Per pixel: when (0..<1 of the flats stage) its region is filled.
    let regionOrder: [Float]
    /// The picture with lines replaced by the colour of the region under them, flattened per region.
    let flats: [RGBA]
    /// Flat colours plus the picture's smooth shading: the state before details.
    let shaded: [RGBA]
    /// The picture with lines replaced by their region's colour, unsmoothed.
    let unlined: [RGBA]

    /// Polls `context` for cancellation between phases and every row or fill interval within them.
    init(_ image: RGBAImage, seed: Int, context: JobContext) throws(ProtocolError) {
        original = image
        let (width, height, n) = (image.width, image.height, image.pixelCount)
        blank = image.isOpaque ? .white : .transparent
        var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: seed) ^ 0x5EED)

        let art = try LineArt(image, threshold: 0.55, gapClosing: 1, neutralLinesOnly: true, context: context)
        lineStrength = art.strength.map { $0 > 0.55 ? min(1, ($0 - 0.3) / 0.5) : 0 }

        // Strokes: connected pieces of line, drawn roughly top to bottom with seeded jitter.
        let lineMask = lineStrength.map { $0 > 0 }
        let (stroke, strokeCount) = try LineArt.connectedComponents(open: lineMask, width: width, height: height,
                                                                    context: context)
        var top = [Int](repeating: Int.max, count: strokeCount), bottom = [Int](repeating: 0, count: strokeCount)
        for p in 0..<n where stroke[p] >= 0 {
            let s = Int(stroke[p]), y = p / width
            top[s] = min(top[s], y)
            bottom[s] = max(bottom[s], y)
        }
        let strokeKey = (0..<strokeCount).map { Float(top[$0]) / Float(height) + rng.nextUnit() * 0.3 }
        let strokeRank = Self.ranks(strokeKey)
        var offsets = (0..<strokeCount).map { _ in Int32(Int(rng.next() % 5) - 2) * Int32(width) + Int32(Int(rng.next() % 5) - 2) }
        if offsets.isEmpty { offsets = [0] }
        var order = [Float](repeating: 2, count: n)
        var roughOffset = [Int32](repeating: 0, count: n)
        for p in 0..<n where stroke[p] >= 0 {
            let s = Int(stroke[p])
            let within = Float(p / width - top[s]) / Float(bottom[s] - top[s] + 1)
            order[p] = (Float(strokeRank[s]) + within) / Float(strokeCount)
            roughOffset[p] = offsets[s]
        }
        strokeOrder = order
        self.roughOffset = roughOffset
        try context.checkCancellation()

        // Regions: filled largest first, with seeded jitter; lines and the grown zone belong to the nearest region.
        var labels = art.region
        try LineArt.propagate(labels: &labels, width: width, height: height,
                              cost: [UInt8](repeating: 1, count: n), maxCost: 1, context: context) { _, _ in true }
        let regionCount = max(1, art.regionCount)
        var sizes = [Int](repeating: 0, count: regionCount)
        for p in 0..<n where labels[p] >= 0 { sizes[Int(labels[p])] += 1 }
        let regionKey = (0..<regionCount).map { -Float(sizes[$0]) / Float(n) * (0.5 + rng.nextUnit()) }
        let regionRank = Self.ranks(regionKey)
        regionOrder = (0..<n).map { p in labels[p] >= 0 ? Float(regionRank[Int(labels[p])]) / Float(regionCount) : 0 }
        try context.checkCancellation()

        // Flat colour of a region: the per-channel median of its non-line pixels.
        var histograms = [[Int]](repeating: [], count: regionCount)
        for p in 0..<n where labels[p] >= 0 && !lineMask[p] {
            let r = Int(labels[p])
            if histograms[r].isEmpty { histograms[r] = [Int](repeating: 0, count: 4 * 256) }
            let c = image.pixel(p)
            histograms[r][Int(c.r)] += 1
            histograms[r][256 + Int(c.g)] += 1
            histograms[r][512 + Int(c.b)] += 1
            histograms[r][768 + Int(c.a)] += 1
        }
        let regionFlat: [RGBA] = histograms.map { h in
            guard !h.isEmpty else { return .black }
            func median(_ channel: Int) -> UInt8 {
                let counts = h[(channel * 256)..<(channel * 256 + 256)]
                let half = counts.reduce(0, +) / 2
                var seen = 0
                for (v, c) in counts.enumerated() {
                    seen += c
                    if seen > half { return UInt8(v) }
                }
                return 255
            }
            return RGBA(median(0), median(1), median(2), median(3))
        }
        try context.checkCancellation()
        let flats = (0..<n).map { p in labels[p] >= 0 ? regionFlat[Int(labels[p])] : image.pixel(p) }
        self.flats = flats
        let unlined = (0..<n).map { p in lineMask[p] ? flats[p] : image.pixel(p) }
        self.unlined = unlined
        // Shading: the picture's smooth deviation from its flat colours, added to them but never past the final colour
        // (region edges stay sharp, a flat-coloured picture gets almost no shading, and shading only moves towards the
        // finished picture).
        let radius = max(2, min(width, height) / 96)
        let smoothPicture = try Self.boxBlur(unlined, width: width, height: height, radius: radius, context: context)
        let smoothFlats = try Self.boxBlur(flats, width: width, height: height, radius: radius, context: context)
        shaded = (0..<n).map { p in
            let f = flats[p], a = smoothPicture[p], b = smoothFlats[p], u = unlined[p]
            func shade(_ flat: UInt8, _ smooth: UInt8, _ smoothFlat: UInt8, _ final: UInt8) -> UInt8 {
                let deviation = Int(smooth) - Int(smoothFlat), toFinal = Int(final) - Int(flat)
                guard deviation.signum() == toFinal.signum() else { return flat }
                return UInt8(Int(flat) + (abs(deviation) < abs(toFinal) ? deviation : toFinal))
            }
            return RGBA(shade(f.r, a.r, b.r, u.r), shade(f.g, a.g, b.g, u.g), shade(f.b, a.b, b.b, u.b), shade(f.a, a.a, b.a, u.a))
        }
    }

    /// Rank of each key in ascending order.
    static func ranks(_ keys: [Float]) -> [Int] {
        var rank = [Int](repeating: 0, count: keys.count)
        for (r, i) in keys.indices.sorted(by: { keys[$0] < keys[$1] }).enumerated() { rank[i] = r }
        return rank
    }

    /// Separable box blur with clamped edges.
    static func boxBlur(_ pixels: [RGBA], width: Int, height: Int, radius: Int,
                        context: JobContext) throws(ProtocolError) -> [RGBA] {
        func pass(_ src: [RGBA], along count: Int, lines: Int, index: (Int, Int) -> Int) throws(ProtocolError) -> [RGBA] {
            var out = src
            for line in 0..<lines {
                try context.checkCancellation()
                var acc = (0, 0, 0, 0)
                func add(_ c: RGBA, _ sign: Int) {
                    acc = (acc.0 + sign * Int(c.r), acc.1 + sign * Int(c.g), acc.2 + sign * Int(c.b), acc.3 + sign * Int(c.a))
                }
                for k in -radius...radius { add(src[index(line, min(max(k, 0), count - 1))], 1) }
                let span = 2 * radius + 1
                for i in 0..<count {
                    out[index(line, i)] = RGBA(UInt8(acc.0 / span), UInt8(acc.1 / span), UInt8(acc.2 / span), UInt8(acc.3 / span))
                    add(src[index(line, min(i + radius + 1, count - 1))], 1)
                    add(src[index(line, max(i - radius, 0))], -1)
                }
            }
            return out
        }
        let h = try pass(pixels, along: width, lines: height) { line, i in line * width + i }
        return try pass(h, along: height, lines: width) { line, i in i * width + line }
    }

    static func progress(_ completion: Float, from start: Float, to end: Float) -> Float {
        min(1, max(0, (completion - start) / (end - start)))
    }

    /// The canvas at `completion` in 0...1 (1 returns the original exactly).
    func render(completion c: Float, context: JobContext) throws(ProtocolError) -> RGBAImage {
        if c >= 1 { return original }
        typealias S = BuiltinUndoSimulator
        let rough = Self.progress(c, from: 0, to: S.roughEnd)
        let lines = Self.progress(c, from: S.roughEnd, to: S.linesEnd)
        let fills = Self.progress(c, from: S.linesEnd, to: S.flatsEnd)
        let shading = Self.progress(c, from: S.flatsEnd, to: S.shadingEnd)
        let details = Self.progress(c, from: S.shadingEnd, to: 1)
        let n = original.pixelCount
        var out = RGBAImage(width: original.width, height: original.height, fill: blank)
        // Paint: flats, then shading, then details (each region in its turn).
        for p in 0..<n {
            if p % original.width == 0 { try context.checkCancellation() }
            var base = blank
            let region = regionOrder[p]
            if region < fills { base = flats[p] }
            if region < shading { base = shaded[p] }
            if details > 0 { base = shaded[p].mixed(with: unlined[p], details) }
            out.setPixel(p, base)
        }
        // Rough strokes: light grey, offset, fading as the clean lines go in.
        let roughAlpha = 0.45 * (1 - lines)
        if rough > 0 && roughAlpha > 0 {
            let grey = RGBA(90, 90, 110)
            try context.checkCancellation()
            for p in 0..<n where strokeOrder[p] < rough {
                let q = p + Int(roughOffset[p])
                guard q >= 0 && q < n else { continue }
                var ink = grey
                ink.a = UInt8(roughAlpha * lineStrength[p] * 255)
                out.setPixel(q, ink.over(out.pixel(q)))
            }
        }
        // Clean lines in the picture's own line colour.
        for p in 0..<n where strokeOrder[p] < lines {
            var ink = original.pixel(p)
            ink.a = UInt8(Float(ink.a) * lineStrength[p])
            out.setPixel(p, ink.over(out.pixel(p)))
        }
        return out
    }
}
