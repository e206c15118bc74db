// PaintsEngine/BuiltinColorizer: LazyBrush-style flat colouring of line art from colour scribbles, with no model files.
import PaintsProtocol
import PaintsRaster
import PaintsTensor

/// Colours line art the way Krita's Colorize Mask does, without a model:
///
/// 1. Line strength is read from the sketch (dark on white or opaque on transparent); lines above `line_threshold` are
///    grown by `gap_closing` pixels so small gaps in the drawing do not let colour leak, and the enclosed regions found.
/// 2. Scribbles are the sources. Regions touching the canvas border with no scribble are outside the drawing: they
///    stay empty. Scribbles of the `empty_key` colour mark areas to leave empty (Krita's transparent key). Given a
///    `reference`, regions without a scribble take the reference palette colour that covers most of them.
/// 3. Every other pixel takes the source it is least separated from: the path whose strongest line crossed is weakest
///    (a closed gap counts as a line at the threshold), then the shortest (`LineArt.weakestBarrierLabels`). So two
///    scribbles in one region split it along faint lines, pockets cut off by fur-like strokes take the colour around
///    them, and colour runs under the lines from both sides to meet in their middle, with no halo.
/// 4. Colour runs under lines that are dark ink only: a grey or coloured line area keeps its own colour (the flat layer
///    is empty there, and `composite_lines` draws it as it is).
///
/// Output: the flat-colour layer; with `composite_lines` the lines are drawn over it. `fill` gives the flat layer with
/// the drawing's inside and the scribbles' colours (`FlatFill`), for engines that paint over the flats.
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
        EngineOption("empty_key", .string, default: .string(Settings.defaultEmptyKey),
                     summary: "scribbles of this colour (#rrggbb, each channel within 16) mark areas to leave empty, "
                         + "like Krita's transparent key; \"none\" makes it an ordinary colour"),
    ]

    public static let capabilities = MethodCapabilities(method: .colorize, inputs: ["sketch", "hints", "reference"],
                                                       options: options)

    public init() {}

    /// Memory of a colorize per sketch pixel: line strength, regions and labels (12 bytes), levels, masks and the
    /// fill's flags (about 7), the output (4), the fill's queues (up to 8 where everything is line), and temporaries
    /// of the line analysis and the reference palette. `make bench` prints this estimate beside the peak measured.
    public static let bytesPerPixel = 48

    struct Settings {
        static let defaultEmptyKey = "#ff00ff"
        var gapClosing = 2
        var lineThreshold: Float = 0.35
        var compositeLines = false
        var paletteSize = 12
        var emptyKey: RGBA? = RGBA(255, 0, 255)

        init(_ options: [String: JSONValue]) throws(ProtocolError) {
            var r = ParamReader(options, path: "options.")
            gapClosing = try r.int("gap_closing", in: 0...16) ?? gapClosing
            lineThreshold = Float(try r.double("line_threshold", in: 0.01...0.99) ?? Double(lineThreshold))
            compositeLines = try r.bool("composite_lines") ?? compositeLines
            paletteSize = try r.int("palette_size", in: 2...32) ?? paletteSize
            if let key = try r.string("empty_key") {
                if key.lowercased() == "none" {
                    emptyKey = nil
                } else if let colour = Self.colour(key) {
                    emptyKey = colour
                } else {
                    throw ProtocolError(.invalidParams, "options.empty_key: expected a colour \"#rrggbb\" or \"none\", got \"\(key.prefix(40))\"",
                                        details: ["param": "options.empty_key", "expected": "a colour #rrggbb or none"])
                }
            }
            try r.finish()
        }

        /// `#rrggbb` (the `#` optional) as a colour.
        static func colour(_ text: String) -> RGBA? {
            let hex = text.hasPrefix("#") ? text.dropFirst() : Substring(text)
            guard hex.count == 6, let value = UInt32(hex, radix: 16) else { return nil }
            return RGBA(UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF))
        }
    }

    /// Luminance (over white) below which a neutral line pixel is dark ink that colour runs under.
    static let inkLuminance: Float = 0.18
    /// Chroma ((max - min) / 255) from which a line pixel is coloured, never ink.
    static let inkChroma: Float = 0.25

    public func colorize(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> ColorizeOutput {
        let settings = try Settings(input.options)
        var made = try flatColours(input, settings: settings, findInside: false, context: context)
        if settings.compositeLines {
            try Self.drawLines(input.sketch, strength: made.strength, ownColour: made.ownColour, over: &made.fill.flats,
                               context: context)
        }
        context.report(stage: "compose", step: Self.steps, steps: Self.steps, fraction: 1, preview: nil)
        return ColorizeOutput(image: made.fill.flats, info: made.fill.info)
    }

    /// The flat colours under the lines with what they were made from, for engines that paint over them (the sd
    /// engine): `flats` is what `colorize` returns without `composite_lines` (that option is accepted and ignored
    /// here), and `inside` says which pixels belong to the drawing. Same options, progress stages and cancellation
    /// as `colorize`; `inside` costs a second fill when some region's place differs from its flat colour (see
    /// `FlatFill.inside`).
    public func fill(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> FlatFill {
        let settings = try Settings(input.options)
        let made = try flatColours(input, settings: settings, findInside: true, context: context)
        context.report(stage: "compose", step: Self.steps, steps: Self.steps, fraction: 1, preview: nil)
        return made.fill
    }

    /// Memory of `fill` per sketch pixel: `bytesPerPixel` and its inside fill's seeds, flags and mask.
    public static let fillBytesPerPixel = bytesPerPixel + 8

    /// Progress steps of a colorize (lines, regions, fill, compose).
    static let steps = 4

    /// The flats and what drawing the lines over them needs.
    struct FlatColours {
        var fill: FlatFill
        /// Line pixels that keep their own colour (`ownColourLines`).
        var ownColour: [Bool]
        /// The sketch's line strength (`LineArt.strength`).
        var strength: [Float]
    }

    /// Steps 1 to 4 of the type's summary, up to the flat layer (reports every stage but the last); with `findInside`
    /// also the inside of the drawing, else `inside` is empty.
    func flatColours(_ input: ColorizeInput, settings: Settings, findInside: Bool,
                     context: JobContext) throws(ProtocolError) -> FlatColours {
        let sketch = input.sketch
        let (width, height, n) = (sketch.width, sketch.height, sketch.pixelCount)
        let steps = Self.steps
        context.report(stage: "lines", step: 0, steps: steps, fraction: 0, preview: nil)
        let art = try LineArt(sketch, threshold: settings.lineThreshold, gapClosing: settings.gapClosing, context: context)
        try context.checkCancellation()
        context.report(stage: "regions", step: 1, steps: steps, fraction: 0.3, preview: nil)

        // Colour table: index 0 is "empty"; hint colours and reference palette entries follow.
        var colours: [RGBA] = [.transparent]
        var colourIndex: [RGBA: Int32] = [:]
        func index(of colour: RGBA) -> Int32 {
            if let i = colourIndex[colour] { return i }
            colours.append(colour)
            colourIndex[colour] = Int32(colours.count - 1)
            return Int32(colours.count - 1)
        }

        // Sources: scribble pixels that are not on a line (those would paint the wrong side of it); -1 is unlabelled.
        let threshold = settings.lineThreshold
        var labels = [Int32](repeating: -1, count: n)
        var hinted = [Bool](repeating: false, count: art.regionCount)
        // Per region: the one label scribbled in it, -1 for none, -2 for several.
        var regionLabel = [Int32](repeating: -1, count: art.regionCount)
        var hintPixels = 0, emptyPixels = 0
        var scribbleColours = Set<RGBA>()
        if var hints = input.hints {
            if hints.width != width || hints.height != height { hints = hints.resized(width: width, height: height) }
            var last: (RGBA, Int32)?  // scribbles come in runs of one colour
            let strength = art.strength, hintPixelsBytes = hints.pixels
            for y in 0..<height {
                try context.checkCancellation()
                // Most of a hints layer is empty: find the scribbled pixels of the row first.
                let scribbled = hintPixelsBytes.withUnsafeBufferPointer { px in
                    strength.withUnsafeBufferPointer { s in
                        ((y * width)..<(y * width + width)).filter { px[$0 * 4 + 3] > 0 && s[$0] <= threshold }
                    }
                }
                for p in scribbled {
                    var c = hints.pixel(p)
                    c.a = 255
                    let label: Int32
                    if let last, last.0 == c {
                        label = last.1
                    } else if let key = settings.emptyKey, max(abs(Int(c.r) - Int(key.r)), abs(Int(c.g) - Int(key.g)),
                                                               abs(Int(c.b) - Int(key.b))) <= 16 {
                        label = 0
                    } else {
                        label = index(of: c)
                        scribbleColours.insert(c)
                    }
                    last = (c, label)
                    labels[p] = label
                    if label == 0 { emptyPixels += 1 }
                    if art.region[p] >= 0 {
                        let r = Int(art.region[p])
                        hinted[r] = true
                        if regionLabel[r] != label { regionLabel[r] = regionLabel[r] == -1 ? label : -2 }
                    }
                    hintPixels += 1
                }
            }
        }
        try context.checkCancellation()
        // Regions with no scribble: a reference palette colour; else empty when they touch the canvas border (outside
        // the drawing); else unlabelled, to be filled from around them.
        var regionColour = [Int32](repeating: -1, count: art.regionCount)
        var touchesBorder = [Bool](repeating: false, count: art.regionCount)
        for x in 0..<width {
            for p in [x, (height - 1) * width + x] where art.region[p] >= 0 { touchesBorder[Int(art.region[p])] = true }
        }
        for y in 0..<height {
            for p in [y * width, y * width + width - 1] where art.region[p] >= 0 { touchesBorder[Int(art.region[p])] = true }
        }
        var paletteInfo: [JSONValue] = []
        if let reference = input.reference {
            let sized = reference.width == width && reference.height == height ? reference
                : reference.resized(width: width, height: height)
            let palette = Palette(sized, size: settings.paletteSize, seed: input.seed)
            try context.checkCancellation()
            paletteInfo = palette.colours.map { .string($0.description) }
            var votes = [[Int]](repeating: [Int](repeating: 0, count: palette.colours.count), count: art.regionCount)
            for p in 0..<n {
                let r = art.region[p], entry = palette.entry[p]
                if r >= 0, !hinted[Int(r)], entry != Palette.none { votes[Int(r)][Int(entry)] += 1 }
            }
            for r in 0..<art.regionCount where !hinted[r] {
                if let best = votes[r].indices.max(by: { votes[r][$0] < votes[r][$1] }), votes[r][best] > 0 {
                    regionColour[r] = index(of: palette.colours[best])
                }
            }
        }
        var outside = [Bool](repeating: false, count: art.regionCount)
        for r in 0..<art.regionCount where !hinted[r] && regionColour[r] < 0 && touchesBorder[r] {
            regionColour[r] = 0
            outside[r] = true
        }
        // A region scribbled in one colour only, with no faint line in it as strong as a closed gap, is that colour
        // throughout (no other label can reach its pixels across a weaker barrier): label it at once, sparing the fill.
        let levels = art.barrierLevels(threshold: threshold)
        var regionMaxLevel = [UInt8](repeating: 0, count: art.regionCount)
        art.region.withUnsafeBufferPointer { region in
            for p in 0..<n where region[p] >= 0 {
                let r = Int(region[p])
                regionMaxLevel[r] = max(regionMaxLevel[r], levels[p])
            }
        }
        let gapLevel = LineArt.level(threshold)
        for r in 0..<art.regionCount where hinted[r] && regionLabel[r] >= 0 && regionMaxLevel[r] < gapLevel {
            regionColour[r] = regionLabel[r]
        }
        // The outside's emptiness gives way to scribbles at equal separation (see `weakestBarrierLabels`).
        var yielding = [Bool](repeating: false, count: outside.contains(true) ? n : 0)
        art.region.withUnsafeBufferPointer { region in
            regionColour.withUnsafeBufferPointer { regionColour in
                for p in 0..<n where region[p] >= 0 && labels[p] < 0 {
                    let r = Int(region[p])
                    labels[p] = regionColour[r]
                    if outside[r] { yielding[p] = true }
                }
            }
        }
        try context.checkCancellation()
        // The inside of the drawing is the pixels the fill gives a colour, unless a region without a scribble is
        // placed otherwise than it is coloured: inside though not coloured (away from the border, no reference
        // colour), or outside though coloured (touching the border, a reference colour). Then it takes a fill of its
        // own from the same sources with every colour made one.
        var insideSources: (labels: [Int32], yielding: [Bool])?
        if findInside && (0..<art.regionCount).contains(where: { r in
            !hinted[r] && (touchesBorder[r] ? regionColour[r] > 0 : regionColour[r] < 0)
        }) {
            insideSources = try Self.insideSources(labels: labels, region: art.region, hinted: hinted,
                                                   touchesBorder: touchesBorder, width: width, height: height,
                                                   context: context)
        }
        context.report(stage: "fill", step: 2, steps: steps, fraction: 0.45, preview: nil)

        // Everything else: the source least separated by lines, then the nearest.
        let open = yielding.isEmpty && insideSources == nil ? nil : art.region.map { $0 >= 0 }
        try LineArt.weakestBarrierLabels(labels: &labels, levels: levels, yielding: yielding,
                                         open: yielding.isEmpty ? nil : open,
                                         width: width, height: height, context: context)
        try context.checkCancellation()
        var inside: [Bool] = []
        if findInside {
            if insideSources != nil {
                try LineArt.weakestBarrierLabels(labels: &insideSources!.labels, levels: levels,
                                                 yielding: insideSources!.yielding, open: open,
                                                 width: width, height: height, context: context)
                inside = try Self.positive(insideSources!.labels, width: width, height: height, context: context)
                insideSources = nil
            } else {
                inside = try Self.positive(labels, width: width, height: height, context: context)
            }
        }
        context.report(stage: "compose", step: 3, steps: steps, fraction: 0.85, preview: nil)

        let ownColour = try Self.ownColourLines(sketch, strength: art.strength, threshold: threshold, context: context)
        var flats = RGBAImage(width: width, height: height)
        var filled = 0
        try flats.pixels.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
            try labels.withUnsafeBufferPointer { (labels) throws(ProtocolError) in
                try ownColour.withUnsafeBufferPointer { (ownColour) throws(ProtocolError) in
                    try colours.withUnsafeBufferPointer { (colours) throws(ProtocolError) in
                        for y in 0..<height {
                            try context.checkCancellation()
                            // A grey or coloured line area has no colour under it.
                            for p in (y * width)..<(y * width + width) where labels[p] > 0 && !ownColour[p] {
                                let colour = colours[Int(labels[p])], o = p * 4
                                filled += 1
                                dst[o] = colour.r
                                dst[o + 1] = colour.g
                                dst[o + 2] = colour.b
                                dst[o + 3] = colour.a
                            }
                        }
                    }
                }
            }
        }
        var info: [String: JSONValue] = [
            "regions": JSONValue(art.regionCount), "hint_pixels": JSONValue(hintPixels),
            "hinted_regions": JSONValue(hinted.filter { $0 }.count),
            "filled_fraction": JSONValue(Double(filled) / Double(n)),
        ]
        if emptyPixels > 0 { info["empty_key_pixels"] = JSONValue(emptyPixels) }
        if !paletteInfo.isEmpty { info["reference_palette"] = .array(paletteInfo) }
        // An empty layer is no result: say why (clients show `info.warning`; the Krita docker adds no layer then).
        if filled == 0 {
            info["warning"] = .string(input.hints == nil && input.reference == nil
                ? "nothing to colour from: no colour scribbles (hints) and no reference were given; the layer is empty"
                : input.hints != nil && hintPixels == emptyPixels && input.reference == nil
                ? "nothing to colour from: the hints layer has no colour scribble off the lines; the layer is empty"
                : "nothing was coloured: no scribble or reference colour reached a region; the layer is empty")
        }
        return FlatColours(fill: FlatFill(flats: flats, inside: inside, scribbleColours: scribbleColours, info: info,
                                          ownColourLines: findInside ? ownColour : []),
                           ownColour: ownColour, strength: art.strength)
    }

    /// Sources of the inside fill, from the colour fill's sources (`labels` before its fill): every colour becomes 1,
    /// the empty key stays 0 (empty-key scribbles keep their area out of the drawing); a region without a scribble is
    /// 1 throughout, or 0 and yielding (as the colour fill's outside) when it touches the canvas border.
    static func insideSources(labels: [Int32], region: [Int32], hinted: [Bool], touchesBorder: [Bool], width: Int,
                              height: Int, context: JobContext) throws(ProtocolError) -> (labels: [Int32], yielding: [Bool]) {
        var sources = [Int32](repeating: -1, count: labels.count)
        var yielding = [Bool](repeating: false, count: labels.count)
        for y in 0..<height {
            try context.checkCancellation()
            for p in (y * width)..<(y * width + width) {
                let r = Int(region[p])
                if r >= 0 && !hinted[r] {
                    sources[p] = touchesBorder[r] ? 0 : 1
                    yielding[p] = touchesBorder[r]
                } else {
                    sources[p] = min(labels[p], 1)
                }
            }
        }
        return (sources, yielding)
    }

    /// Pixels whose label is a colour (above 0).
    static func positive(_ labels: [Int32], width: Int, height: Int,
                         context: JobContext) throws(ProtocolError) -> [Bool] {
        var out = [Bool](repeating: false, count: labels.count)
        for y in 0..<height {
            try context.checkCancellation()
            for p in (y * width)..<(y * width + width) { out[p] = labels[p] > 0 }
        }
        return out
    }

    /// The sketch's lines drawn over the flat layer, as `composite_lines` does: a line of strength s is its own colour
    /// at opacity s over the flat colour, and a line area that keeps its own colour is the sketch as it is.
    static func drawLines(_ sketch: RGBAImage, strength: [Float], ownColour: [Bool], over flats: inout RGBAImage,
                          context: JobContext) throws(ProtocolError) {
        let (width, height) = (sketch.width, sketch.height)
        try sketch.pixels.withUnsafeBufferPointer { (src) throws(ProtocolError) in
            try flats.pixels.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
                try ownColour.withUnsafeBufferPointer { (ownColour) throws(ProtocolError) in
                    try strength.withUnsafeBufferPointer { (strength) throws(ProtocolError) in
                        for y in 0..<height {
                            try context.checkCancellation()
                            for p in (y * width)..<(y * width + width) {
                                let o = p * 4
                                if ownColour[p] {
                                    for c in 0..<4 { dst[o + c] = src[o + c] }
                                    continue
                                }
                                let s = strength[p]
                                guard s > 0 else { continue }
                                var line = RGBA(src[o], src[o + 1], src[o + 2], 255)
                                line.a = UInt8(max(0, min(255, s * 255 + 0.5)))
                                let colour = line.over(RGBA(dst[o], dst[o + 1], dst[o + 2], dst[o + 3]))
                                guard colour.a > 0 else { continue }
                                dst[o] = colour.r
                                dst[o + 1] = colour.g
                                dst[o + 2] = colour.b
                                dst[o + 3] = colour.a
                            }
                        }
                    }
                }
            }
        }
    }

    /// Line pixels that keep their own colour: line pixels that are not dark ink (lighter than `inkLuminance` over
    /// white, or of chroma from `inkChroma`) and are not the anti-aliased rim of a darker line on paper. A rim is what
    /// paper reaches by steps that never get lighter (the strength never falls by more than a step's tolerance);
    /// the lightest point of a grey line on paper (no darker neighbour) still keeps its colour. So a grey area inside
    /// a black outline (an umbrella's shaft, a grey ring in a black hub) and the core of a grey or coloured line keep
    /// their colour, while the grey rims of black lines get colour under them, at any resolution.
    static func ownColourLines(_ sketch: RGBAImage, strength: [Float], threshold: Float,
                               context: JobContext) throws(ProtocolError) -> [Bool] {
        let (width, height, n) = (sketch.width, sketch.height, sketch.pixelCount)
        let tolerance: Float = 8 / 255
        var own = [Bool](repeating: false, count: n)
        var candidates = 0
        try sketch.pixels.withUnsafeBufferPointer { (px) throws(ProtocolError) in
            for y in 0..<height {
                try context.checkCancellation()
                for p in (y * width)..<(y * width + width) where strength[p] > threshold {
                    let o = p * 4
                    let (r, g, b) = (Float(px[o]), Float(px[o + 1]), Float(px[o + 2]))
                    let chroma = (max(r, g, b) - min(r, g, b)) / 255
                    // Strength is darkness over white (1 - luminance of the pixel laid over white).
                    if chroma >= inkChroma || 1 - strength[p] >= inkLuminance {
                        own[p] = true
                        candidates += 1
                    }
                }
            }
        }
        guard candidates > 0 else { return own }
        // Rims: flood from paper into line pixels, never to a lighter one.
        var rim = [Bool](repeating: false, count: n)
        var stack: [Int32] = []
        var visited = 0
        try strength.withUnsafeBufferPointer { (s) throws(ProtocolError) in
            try rim.withUnsafeMutableBufferPointer { (rim) throws(ProtocolError) in
                @inline(__always) func neighbours(_ p: Int, _ body: (Int) -> Void) {
                    LineArt.forEachNeighbour(of: p, width: width, count: n, body)
                }
                for y in 0..<height {
                    try context.checkCancellation()
                    for p in (y * width)..<(y * width + width) where s[p] > threshold {
                        var onPaper = false
                        neighbours(p) { q in if s[q] <= threshold { onPaper = true } }
                        if onPaper {
                            rim[p] = true
                            stack.append(Int32(p))
                        }
                    }
                }
                while let top = stack.popLast() {
                    visited += 1
                    if visited % LineArt.pollInterval == 0 { try context.checkCancellation() }
                    let p = Int(top), floor = s[p] - tolerance
                    neighbours(p) { q in
                        if !rim[q] && s[q] > threshold && s[q] >= floor {
                            rim[q] = true
                            stack.append(Int32(q))
                        }
                    }
                }
                // A rim pixel with no darker neighbour is the middle of a line lighter than ink: it keeps its colour.
                for y in 0..<height {
                    try context.checkCancellation()
                    for p in (y * width)..<(y * width + width) where own[p] && rim[p] {
                        var darker = false
                        neighbours(p) { q in if s[q] > s[p] + tolerance { darker = true } }
                        own[p] = !darker
                    }
                }
            }
        }
        return own
    }
}

/// The flat colours of a drawing and its shape, as `BuiltinColorizer.fill` finds them: what an engine painting over
/// the flats (the sd engine) needs to keep the drawing's colours and outline.
public struct FlatFill: Sendable {
    /// The flat-colour layer under the lines, no lines drawn, transparent where nothing was coloured (outside the
    /// drawing, empty-key areas, grey or coloured line areas): exactly what `colorize` returns without
    /// `composite_lines`.
    public var flats: RGBAImage
    /// Per pixel, row-major: inside the drawing. Everything but the part of the canvas the drawing's outline closes
    /// off from it: a region (lines grown by `gap_closing` enclose it) is outside when it touches the canvas border
    /// and has no scribble, or only empty-key scribbles; every other region is inside, scribbled or not, coloured or
    /// not (a reference colour does not bring a border region in). Line pixels and the zone grown around them go to
    /// the side that reaches them in the fill the flats use (weakest barrier, then distance; the outside yielding),
    /// so the inside runs under the inner half of the outline and stops in its middle.
    public var inside: [Bool]
    /// The colours scribbles gave the flats (opaque; neither the empty key nor reference palette colours, unless a
    /// scribble has that colour too).
    public var scribbleColours: Set<RGBA>
    /// What `colorize` reports in its `info`.
    public var info: [String: JSONValue]
    /// Per pixel: a grey or coloured line area that keeps its own colour (the flats are empty there); a colour layer
    /// painted over the flats leaves these to the line art too, so they stay as drawn. Empty when `inside` is.
    public var ownColourLines: [Bool]

    public init(flats: RGBAImage, inside: [Bool], scribbleColours: Set<RGBA>, info: [String: JSONValue], ownColourLines: [Bool] = []) {
        self.flats = flats
        self.inside = inside
        self.scribbleColours = scribbleColours
        self.info = info
        self.ownColourLines = ownColourLines
    }
}

/// A small colour palette of an image (k-means on a sample), and each pixel's nearest entry.
struct Palette {
    let colours: [RGBA]
    /// Palette index per pixel; `none` for (nearly) transparent pixels.
    let entry: [UInt8]
    static let none: UInt8 = 255

    init(_ image: RGBAImage, size: Int, seed: Int) {
        var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: seed))
        let opaque = (0..<Int32(image.pixelCount)).filter { image.pixels[Int($0) * 4 + 3] >= 128 }
        guard !opaque.isEmpty else {
            colours = []
            entry = Array(repeating: Self.none, count: image.pixelCount)
            return
        }
        let sample = (0..<min(4096, opaque.count)).map { _ in image.pixel(Int(opaque[Int(rng.next() % UInt64(opaque.count))])) }
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
        var entry = [UInt8](repeating: Self.none, count: image.pixelCount)
        var last: (RGBA, UInt8)?  // pictures come in runs of one colour
        for p in 0..<image.pixelCount where image.pixels[p * 4 + 3] >= 128 {
            let c = image.pixel(p)
            if let last, last.0 == c {
                entry[p] = last.1
            } else {
                entry[p] = UInt8(Self.nearest(c, in: centres))
                last = (c, entry[p])
            }
        }
        self.entry = entry
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
