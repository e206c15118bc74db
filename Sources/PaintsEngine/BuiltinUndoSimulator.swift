// PaintsEngine/BuiltinUndoSimulator: a classical drawing-process simulator for undo-step previews, with no model files.
import PaintsProtocol
import PaintsRaster
import PaintsTensor

/// Shows what a finished picture plausibly looked like `step` operations earlier (0 = finished, 999 = the first stroke
/// on a blank canvas), rebuilding it in the order an illustrator works:
///
/// | completion | stage |
/// |---|---|
/// | 0.00-0.15 | rough lines: light, slightly offset strokes, stroke by stroke, each drawn along its line |
/// | 0.15-0.30 | clean line art replaces the rough lines, in the same order |
/// | 0.30-0.60 | flat colours, region by region, largest first |
/// | 0.60-0.85 | shading: each region gets the picture's smooth deviation from its flat colour |
/// | 0.85-1.00 | final details: the shaded picture sharpens to the original |
///
/// where completion = 1 - step/1000, so step 999 is almost blank: the first rough stroke only, as Paints-UNDO's step
/// 999 is an almost blank canvas (the blank canvas itself is `undo.sequence`'s frame 1000). A picture with no line
/// work (a layer of flat colours) skips the line stages: its flats start at once. Strokes are the connected pieces of
/// line work, cut into segments along them (by distance within the stroke from its top-most pixel) and drawn segment
/// after segment, following one branch to its end before the next, as a hand draws.
///
/// A layer with transparency is analysed as it looks over white, and its frames keep its transparency: blank is
/// transparent, and regions take their colour (and opacity) from the layer. Regions are the areas the lines enclose,
/// split where the colour changes, so a layer of flat colours with no lines is painted colour area by colour area.
///
/// The order of strokes and regions depends on the seed; a later step never shows more of any stage than an earlier
/// one. Step 0 returns the input exactly.
/// The `undo.preview` half of `BuiltinEngine`.
public struct BuiltinUndoSimulator: Sendable {
    public static let capabilities = MethodCapabilities(method: .undoPreview, inputs: ["image", "steps", "count"], options: [])
    public static let sequenceCapabilities = MethodCapabilities(method: .undoSequence, inputs: ["image", "steps", "count"], options: [])

    public init() {}

    /// Stage boundaries in completion (0 = blank, 1 = finished).
    static let roughEnd: Float = 0.15, linesEnd: Float = 0.30, flatsEnd: Float = 0.60, shadingEnd: Float = 0.85

    /// Completion of a step: 1 - step/1000, so step 999 is not the blank canvas but the first stroke on it.
    static func completion(step: Int) -> Float { 1 - Float(step) / 1000 }

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
                frame = UndoFrame(step: step, image: try plan.render(completion: Self.completion(step: step), context: context))
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
    /// Where the first stroke segment ends in `strokeOrder`: every frame but the blank canvas shows at least that much
    /// of the rough sketch.
    let firstStrokeEnd: Float
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
    /// Ends of the line stages in completion: `BuiltinUndoSimulator`'s, or 0 for a picture with no line work.
    let roughEnd: Float, linesEnd: Float

    /// Polls `context` for cancellation between phases and every row or fill interval within them.
    init(_ image: RGBAImage, seed: Int, context: JobContext) throws(ProtocolError) {
        original = image
        let (width, height, n) = (image.width, image.height, image.pixelCount)
        blank = image.isOpaque ? .white : .transparent
        var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: seed) ^ 0x5EED)
        // A layer is not a flattened painting: it is analysed as it looks over white (its transparent parts are paper),
        // while its frames keep its own colours and transparency.
        let paper = image.flattened(onto: .white)
        try context.checkCancellation()

        let art = try LineArt(paper, threshold: 0.55, gapClosing: 1, neutralLinesOnly: true, context: context)
        lineStrength = art.strength.map { $0 > 0.55 ? min(1, ($0 - 0.3) / 0.5) : 0 }

        // Strokes: connected pieces of line, roughly top to bottom with seeded jitter, each drawn along its line.
        let lineMask = lineStrength.map { $0 > 0 }
        let (stroke, strokeCount) = try LineArt.connectedComponents(open: lineMask, width: width, height: height,
                                                                    context: context)
        var top = [Int](repeating: Int.max, count: strokeCount)
        for p in 0..<n where stroke[p] >= 0 { top[Int(stroke[p])] = min(top[Int(stroke[p])], p / width) }
        let strokeKey = (0..<strokeCount).map { Float(top[$0]) / Float(height) + rng.nextUnit() * 0.3 }
        let strokeRank = Self.ranks(strokeKey)
        var offsets = (0..<strokeCount).map { _ in Int32(Int(rng.next() % 5) - 2) * Int32(width) + Int32(Int(rng.next() % 5) - 2) }
        if offsets.isEmpty { offsets = [0] }
        let segment = max(12, min(width, height) / 16)
        (strokeOrder, firstStrokeEnd) = try Self.strokeTimeline(stroke: stroke, strokeCount: strokeCount, rank: strokeRank,
                                                                 width: width, height: height, segment: segment,
                                                                 context: context)
        var roughOffset = [Int32](repeating: 0, count: n)
        for p in 0..<n where stroke[p] >= 0 { roughOffset[p] = offsets[Int(stroke[p])] }
        self.roughOffset = roughOffset
        let linePixels = lineMask.reduce(0) { $0 + ($1 ? 1 : 0) }
        if linePixels < max(16, n / 10_000) {
            (roughEnd, linesEnd) = (0, 0)
        } else {
            (roughEnd, linesEnd) = (BuiltinUndoSimulator.roughEnd, BuiltinUndoSimulator.linesEnd)
        }
        try context.checkCancellation()

        // Regions: the areas the lines enclose, split where the colour changes; lines, the grown zone and specks
        // belong to the nearest region.
        let (regions, regionCount) = try Self.colourRegions(paper, alpha: image, open: art.region.map { $0 >= 0 },
                                                            tolerance: 24, minimum: max(8, n / 50_000), context: context)
        var labels = regions
        try LineArt.propagate(labels: &labels, width: width, height: height,
                              cost: [UInt8](repeating: 1, count: n), maxCost: 1, context: context) { _, _ in true }
        let regionSlots = max(1, regionCount)
        var sizes = [Int](repeating: 0, count: regionSlots)
        for p in 0..<n where labels[p] >= 0 { sizes[Int(labels[p])] += 1 }
        try context.checkCancellation()

        // Flat colour of a region: the per-channel median of its non-line pixels.
        var histograms = [[Int]](repeating: [], count: regionSlots)
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
        // Filled largest first, with seeded jitter; regions that stay empty (a layer's transparent parts) take no turn.
        let regionKey = (0..<regionSlots).map { r in
            regionFlat[r].a == 0 ? -Float.infinity : -Float(sizes[r]) / Float(n) * (0.5 + rng.nextUnit())
        }
        let regionRank = Self.ranks(regionKey)
        let emptyRegions = regionFlat.filter { $0.a == 0 }.count
        let turns = Float(max(1, regionSlots - emptyRegions))
        let regionTurn = (0..<regionSlots).map { r in regionFlat[r].a == 0 ? 0 : Float(regionRank[r] - emptyRegions) / turns }
        regionOrder = (0..<n).map { p in labels[p] >= 0 ? regionTurn[Int(labels[p])] : 0 }
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

    /// When each line pixel is drawn (0..<1 of a line stage; 2 for pixels that are not line), and where the first
    /// segment ends.
    ///
    /// Strokes go in `rank` order. Within a stroke, the geodesic distance (steps within the stroke) from its top-most
    /// pixel cuts it into segments of `segment` steps; the segments form a tree (each hangs off the one it grows from)
    /// that is walked depth first, so one branch is drawn to its end before the next begins. Within a segment pixels
    /// go by distance, so the drawn part of a line ends across the line, never in a straight horizontal cut-off. Time
    /// is shared by pixel count: a hand draws at an even pace.
    static func strokeTimeline(stroke: [Int32], strokeCount: Int, rank: [Int], width: Int, height: Int, segment: Int,
                               context: JobContext) throws(ProtocolError) -> (order: [Float], firstEnd: Float) {
        let n = stroke.count
        var order = [Float](repeating: 2, count: n)
        guard strokeCount > 0 else { return (order, 0) }
        var visited = 0
        func poll() throws(ProtocolError) {
            visited += 1
            if visited % LineArt.pollInterval == 0 { try context.checkCancellation() }
        }
        @inline(__always) func neighbours(_ p: Int, _ body: (Int) -> Void) { LineArt.forEachNeighbour(of: p, width: width, count: n, body) }
        // Breadth-first from each stroke's first pixel in raster order (its top-most, left-most one).
        var distance = [Int32](repeating: -1, count: n)
        var queue: [Int32] = []
        var seen = [Bool](repeating: false, count: strokeCount)
        for y in 0..<height {
            try context.checkCancellation()
            for p in (y * width)..<(y * width + width) where stroke[p] >= 0 && !seen[Int(stroke[p])] {
                seen[Int(stroke[p])] = true
                distance[p] = 0
                queue.append(Int32(p))
            }
        }
        var head = 0
        while head < queue.count {
            let p = Int(queue[head])
            head += 1
            try poll()
            let d = distance[p] + 1
            neighbours(p) { q in
                if stroke[q] >= 0 && distance[q] < 0 {
                    distance[q] = d
                    queue.append(Int32(q))
                }
            }
        }
        // Segments: pixels of one stroke and one distance band, connected; each hangs off the segment its first pixel
        // (in breadth-first order: the nearest to the start) was reached from.
        var piece = [Int32](repeating: -1, count: n)
        var pieceStroke: [Int32] = [], pieceParent: [Int32] = [], pieceSize: [Int] = []
        var pieceNear: [Int32] = [], pieceFar: [Int32] = []
        var stack: [Int32] = []
        for entry in queue where piece[Int(entry)] < 0 {
            let e = Int(entry), k = Int32(pieceSize.count), band = distance[e] / Int32(segment)
            var parent: Int32 = -1
            neighbours(e) { q in if parent < 0 && distance[q] == distance[e] - 1 && stroke[q] >= 0 { parent = piece[q] } }
            pieceStroke.append(stroke[e])
            pieceParent.append(parent)
            pieceNear.append(distance[e])
            var size = 0, far = distance[e]
            piece[e] = k
            stack.append(entry)
            while let top = stack.popLast() {
                let p = Int(top)
                try poll()
                size += 1
                far = max(far, distance[p])
                neighbours(p) { q in
                    if stroke[q] >= 0 && piece[q] < 0 && distance[q] / Int32(segment) == band {
                        piece[q] = k
                        stack.append(Int32(q))
                    }
                }
            }
            pieceSize.append(size)
            pieceFar.append(far)
        }
        // Depth first through each stroke's segments, strokes in rank order; children in the order they were reached.
        let pieceCount = pieceSize.count
        var children = [[Int32]](repeating: [], count: pieceCount)
        var roots = [Int32](repeating: -1, count: strokeCount)
        for k in 0..<pieceCount {
            if pieceParent[k] >= 0 { children[Int(pieceParent[k])].append(Int32(k)) } else { roots[Int(pieceStroke[k])] = Int32(k) }
        }
        var start = [Int](repeating: 0, count: pieceCount)
        var elapsed = 0, firstSize = -1
        for s in (0..<strokeCount).sorted(by: { rank[$0] < rank[$1] }) where roots[s] >= 0 {
            var pending = [roots[s]]
            while let k = pending.popLast() {
                start[Int(k)] = elapsed
                elapsed += pieceSize[Int(k)]
                if firstSize < 0 { firstSize = pieceSize[Int(k)] }
                pending.append(contentsOf: children[Int(k)].reversed())
            }
        }
        let total = Float(max(1, elapsed))
        for y in 0..<height {
            try context.checkCancellation()
            for p in (y * width)..<(y * width + width) where piece[p] >= 0 {
                let k = Int(piece[p])
                let within = Float(distance[p] - pieceNear[k]) / Float(pieceFar[k] - pieceNear[k] + 1)
                order[p] = (Float(start[k]) + within * Float(pieceSize[k])) / total
            }
        }
        return (order, Float(max(0, firstSize)) / total)
    }

    /// Areas of one colour: 4-connected pixels of `open` whose neighbours differ by at most `tolerance` in every
    /// channel of `paper` (the picture over white) and in `alpha`'s opacity, numbered in order of first pixel; areas
    /// smaller than `minimum` pixels, and closed pixels, get -1.
    static func colourRegions(_ paper: RGBAImage, alpha: RGBAImage, open: [Bool], tolerance: Int, minimum: Int,
                              context: JobContext) throws(ProtocolError) -> ([Int32], Int) {
        let (width, height, n) = (paper.width, paper.height, paper.pixelCount)
        var labels = [Int32](repeating: -1, count: n)
        var parent = [Int32](repeating: 0, count: n)  // in a noisy picture every pixel may start an area
        var count = 0
        try paper.pixels.withUnsafeBufferPointer { (px) throws(ProtocolError) in
            try alpha.pixels.withUnsafeBufferPointer { (al) throws(ProtocolError) in
                try labels.withUnsafeMutableBufferPointer { (labels) throws(ProtocolError) in
                    try parent.withUnsafeMutableBufferPointer { (parent) throws(ProtocolError) in
                        @inline(__always) func find(_ a: Int32) -> Int32 { LineArt.root(of: a, in: parent) }
                        @inline(__always) func alike(_ p: Int, _ q: Int) -> Bool {
                            let (o, m) = (p * 4, q * 4)
                            return abs(Int(px[o]) - Int(px[m])) <= tolerance && abs(Int(px[o + 1]) - Int(px[m + 1])) <= tolerance
                                && abs(Int(px[o + 2]) - Int(px[m + 2])) <= tolerance
                                && abs(Int(al[o + 3]) - Int(al[m + 3])) <= tolerance
                        }
                        var provisional: Int32 = 0
                        for y in 0..<height {
                            try context.checkCancellation()
                            let row = y * width
                            for x in 0..<width where open[row + x] {
                                let p = row + x
                                let left: Int32 = x > 0 && labels[p - 1] >= 0 && alike(p, p - 1) ? labels[p - 1] : -1
                                let up: Int32 = y > 0 && labels[p - width] >= 0 && alike(p, p - width) ? labels[p - width] : -1
                                if left >= 0 {
                                    labels[p] = left
                                    if up >= 0 && up != left {
                                        let (a, b) = (find(up), find(left))
                                        if a != b { parent[Int(max(a, b))] = min(a, b) }
                                    }
                                } else if up >= 0 {
                                    labels[p] = up
                                } else {
                                    parent[Int(provisional)] = provisional
                                    labels[p] = provisional
                                    provisional += 1
                                }
                            }
                        }
                        // Sizes per root, then final ids for the roots of areas big enough, in order of first pixel.
                        var size = [Int](repeating: 0, count: Int(provisional))
                        for p in 0..<n where labels[p] >= 0 {
                            let root = find(labels[p])
                            labels[p] = root
                            size[Int(root)] += 1
                        }
                        var final = [Int32](repeating: -1, count: Int(provisional))
                        for y in 0..<height {
                            try context.checkCancellation()
                            for p in (y * width)..<(y * width + width) where labels[p] >= 0 {
                                let root = Int(labels[p])
                                if size[root] < minimum {
                                    labels[p] = -1
                                    continue
                                }
                                if final[root] < 0 {
                                    final[root] = Int32(count)
                                    count += 1
                                }
                                labels[p] = final[root]
                            }
                        }
                    }
                }
            }
        }
        return (labels, count)
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
        guard end > start else { return completion >= end ? 1 : 0 }
        return min(1, max(0, (completion - start) / (end - start)))
    }

    /// The canvas at `completion` in 0...1 (1 returns the original exactly).
    func render(completion c: Float, context: JobContext) throws(ProtocolError) -> RGBAImage {
        if c >= 1 { return original }
        typealias S = BuiltinUndoSimulator
        // Every frame after the blank canvas has at least the first stroke of the rough sketch.
        let rough = c > 0 ? max(firstStrokeEnd, Self.progress(c, from: 0, to: roughEnd)) : 0
        let lines = Self.progress(c, from: roughEnd, to: linesEnd)
        let fills = Self.progress(c, from: linesEnd, to: S.flatsEnd)
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
