// PaintsEngine/ColourLayers: a model's colour brought to the canvas: held to the scribbles' colours (palette lock),
// resized under the drawing's full-resolution inside mask, and the line art multiplied over it; with the separable
// resampler these and `LineArtHint` use.
import PaintsProtocol
import PaintsRaster

/// The colour layers an engine that paints at a small working size (the sd engine) hands back at canvas size.
public enum ColourLayers {
    /// Palette lock: holds the colour of each scribbled flat region to its scribble while keeping the shading.
    ///
    /// For each 4-connected component of `flats` pixels of one opaque colour that is in `scribbleColours`, the
    /// component's pixels of `color` that are not fully transparent are moved in OKLab: each pixel's lightness by
    /// `amount * (scribble.L - mean.L)` and its a, b by `amount * (scribble.ab - mean.ab)`, where `mean` is the
    /// component's mean colour in `color`. So the region's hue, chroma and mean lightness go towards the scribble's
    /// (all the way at amount 1) and its variation of lightness and colour (the model's shading) stays. Pixels
    /// elsewhere are untouched (byte for byte), and so is everything at amount 0; alpha is never changed. Colours
    /// pushed out of the sRGB gamut are clipped per channel, which can leave a region's mean short of the scribble's.
    ///
    /// - Parameters:
    ///   - color: the colour to adjust, the size of `flats`.
    ///   - flats: flat colours (`FlatFill.flats`) that say which pixels are which scribble's region.
    ///   - amount: 0...1 (values outside are clamped).
    ///   - context: polled every row.
    public static func lockPalette(_ color: inout RGBAImage, flats: RGBAImage, scribbleColours: Set<RGBA>,
                                   amount: Float, context: JobContext) throws(ProtocolError) {
        guard flats.width == color.width, flats.height == color.height else {
            throw ProtocolError(.internalError, "palette lock: colour is \(color.width)x\(color.height), flats are "
                                + "\(flats.width)x\(flats.height)")
        }
        let amount = min(1, max(0, amount))
        guard amount > 0, !scribbleColours.isEmpty else { return }
        let (width, height) = (color.width, color.height)
        let (component, componentCount) = try scribbledComponents(flats, scribbleColours: scribbleColours,
                                                                   context: context)
        // Per component: the sums of L, a, b over its pixels that have colour, and their count.
        var sums = [(l: Double, a: Double, b: Double, count: Int)](repeating: (0, 0, 0, 0), count: componentCount)
        var target = [OKLab](repeating: OKLab(l: 0, a: 0, b: 0), count: componentCount)
        try color.pixels.withUnsafeBufferPointer { (px) throws(ProtocolError) in
            for y in 0..<height {
                try context.checkCancellation()
                for p in (y * width)..<(y * width + width) where component[p] >= 0 && px[p * 4 + 3] > 0 {
                    let o = p * 4, k = Int(component[p])
                    let lab = OKLab(RGBA(px[o], px[o + 1], px[o + 2]))
                    sums[k].l += Double(lab.l)
                    sums[k].a += Double(lab.a)
                    sums[k].b += Double(lab.b)
                    sums[k].count += 1
                }
            }
        }
        // The first pixel of each component in raster order gives its scribble colour.
        var seen = [Bool](repeating: false, count: componentCount)
        for y in 0..<height {
            try context.checkCancellation()
            for p in (y * width)..<(y * width + width) where component[p] >= 0 && !seen[Int(component[p])] {
                seen[Int(component[p])] = true
                target[Int(component[p])] = OKLab(flats.pixel(p))
            }
        }
        // Per component: the shift every pixel gets.
        let shift = (0..<componentCount).map { k -> OKLab in
            let s = sums[k]
            guard s.count > 0 else { return OKLab(l: 0, a: 0, b: 0) }
            let n = Double(s.count)
            return OKLab(l: amount * (target[k].l - Float(s.l / n)), a: amount * (target[k].a - Float(s.a / n)),
                         b: amount * (target[k].b - Float(s.b / n)))
        }
        try color.pixels.withUnsafeMutableBufferPointer { (px) throws(ProtocolError) in
            for y in 0..<height {
                try context.checkCancellation()
                for p in (y * width)..<(y * width + width) where component[p] >= 0 && px[p * 4 + 3] > 0 {
                    let o = p * 4, d = shift[Int(component[p])]
                    var lab = OKLab(RGBA(px[o], px[o + 1], px[o + 2]))
                    lab.l += d.l
                    lab.a += d.a
                    lab.b += d.b
                    let moved = lab.rgba()
                    px[o] = moved.r
                    px[o + 1] = moved.g
                    px[o + 2] = moved.b
                }
            }
        }
    }

    /// 4-connected components of opaque `flats` pixels of one colour in `scribbleColours`, numbered 0..<count in the
    /// order of their first pixel; other pixels get -1. Two passes over the rows with a union-find (as
    /// `LineArt.connectedComponents`, joining only neighbours of equal colour).
    static func scribbledComponents(_ flats: RGBAImage, scribbleColours: Set<RGBA>,
                                    context: JobContext) throws(ProtocolError) -> ([Int32], Int) {
        let (width, height, n) = (flats.width, flats.height, flats.pixelCount)
        var labels = [Int32](repeating: -1, count: n)
        var parent: [Int32] = []
        var count: Int32 = 0
        try flats.pixels.withUnsafeBufferPointer { (raw) throws(ProtocolError) in
            @inline(__always) func colour(_ p: Int) -> UInt32 {
                UnsafeRawBufferPointer(raw).loadUnaligned(fromByteOffset: p * 4, as: UInt32.self)
            }
            try labels.withUnsafeMutableBufferPointer { (labels) throws(ProtocolError) in
                var last: (UInt32, Bool)?  // flats come in runs of one colour
                for y in 0..<height {
                    try context.checkCancellation()
                    let row = y * width
                    for x in 0..<width {
                        let p = row + x, c = colour(p)
                        let scribbled: Bool
                        if let last, last.0 == c {
                            scribbled = last.1
                        } else {
                            let rgba = RGBA(raw[p * 4], raw[p * 4 + 1], raw[p * 4 + 2], raw[p * 4 + 3])
                            scribbled = rgba.a == 255 && scribbleColours.contains(rgba)
                            last = (c, scribbled)
                        }
                        guard scribbled else { continue }
                        let left: Int32 = x > 0 && colour(p - 1) == c ? labels[p - 1] : -1
                        let up: Int32 = y > 0 && colour(p - width) == c ? labels[p - width] : -1
                        if left >= 0 {
                            labels[p] = left
                            if up >= 0 && up != left {
                                parent.withUnsafeMutableBufferPointer { parent in
                                    let (a, b) = (LineArt.root(of: up, in: parent), LineArt.root(of: left, in: parent))
                                    if a != b { parent[Int(max(a, b))] = min(a, b) }
                                }
                            }
                        } else if up >= 0 {
                            labels[p] = up
                        } else {
                            labels[p] = Int32(parent.count)
                            parent.append(Int32(parent.count))
                        }
                    }
                }
                var final = [Int32](repeating: -1, count: parent.count)
                try parent.withUnsafeMutableBufferPointer { (parent) throws(ProtocolError) in
                    for y in 0..<height {
                        try context.checkCancellation()
                        for p in (y * width)..<(y * width + width) where labels[p] >= 0 {
                            let root = Int(LineArt.root(of: labels[p], in: parent))
                            if final[root] < 0 {
                                final[root] = count
                                count += 1
                            }
                            labels[p] = final[root]
                        }
                    }
                }
            }
        }
        return (labels, Int(count))
    }

    /// The working-size colour at canvas size, as a layer of the drawing: `working` (its alpha ignored) resized to
    /// `canvasWidth` x `canvasHeight` (bilinear along an axis that grows, area average along one that shrinks), opaque
    /// where `inside` (row-major, one per canvas pixel) and fully transparent, colour zeroed, elsewhere. The edge is as
    /// sharp as the mask, which has the canvas's resolution.
    public static func colourLayer(working: RGBAImage, canvasWidth: Int, canvasHeight: Int, inside: [Bool],
                                   context: JobContext) throws(ProtocolError) -> RGBAImage {
        guard canvasWidth > 0, canvasHeight > 0, inside.count == canvasWidth * canvasHeight else {
            throw ProtocolError(.internalError, "colour layer: \(inside.count) inside flags for a \(canvasWidth)x"
                                + "\(canvasHeight) canvas")
        }
        var out = RGBAImage(width: canvasWidth, height: canvasHeight)
        let resize = SeparableResize(from: (working.width, working.height), to: (canvasWidth, canvasHeight), channels: 3)
        try working.pixels.withUnsafeBufferPointer { (src) throws(ProtocolError) in
            try out.pixels.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
                try resize.run(sourceRow: { y, row in
                    let start = y * working.width * 4
                    for x in 0..<working.width {
                        for c in 0..<3 { row[x * 3 + c] = Float(src[start + x * 4 + c]) }
                    }
                }, targetRow: { y, row in
                    let start = y * canvasWidth
                    for x in 0..<canvasWidth where inside[start + x] {
                        let o = (start + x) * 4
                        for c in 0..<3 { dst[o + c] = UInt8(min(255, max(0, row[x * 3 + c])).rounded()) }
                        dst[o + 3] = 255
                    }
                }, context: context)
            }
        }
        return out
    }

    /// The one-picture result: `sketch`, a layer with its own alpha (dark lines on white paper or on transparency),
    /// laid over `color` in the W3C Compositing "multiply" blend mode with source-over compositing:
    /// `co = as·(1−ab)·Cs + as·ab·Cs·Cb + (1−as)·ab·Cb`, `ao = as + ab·(1−as)` (straight alpha in and out). Black
    /// ink stays black, white paper leaves the colour as it is, and where the colour is transparent the sketch shows
    /// as it is (its lines, and its paper if it has any). Both must be the same size.
    public static func linesMultiplied(color: RGBAImage, sketch: RGBAImage,
                                       context: JobContext) throws(ProtocolError) -> RGBAImage {
        guard color.width == sketch.width, color.height == sketch.height else {
            throw ProtocolError(.internalError, "lines multiplied: colour is \(color.width)x\(color.height), sketch is "
                                + "\(sketch.width)x\(sketch.height)")
        }
        let (width, height) = (color.width, color.height)
        var out = RGBAImage(width: width, height: height)
        try color.pixels.withUnsafeBufferPointer { (below) throws(ProtocolError) in
            try sketch.pixels.withUnsafeBufferPointer { (above) throws(ProtocolError) in
                try out.pixels.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
                    for y in 0..<height {
                        try context.checkCancellation()
                        for o in stride(from: y * width * 4, to: (y + 1) * width * 4, by: 4) {
                            let sa = Float(above[o + 3]) / 255, ba = Float(below[o + 3]) / 255
                            let oa = sa + ba * (1 - sa)
                            guard oa > 0 else { continue }
                            for c in 0..<3 {
                                let cs = Float(above[o + c]), cb = Float(below[o + c])
                                let co = sa * (1 - ba) * cs + sa * ba * (cs * cb / 255) + (1 - sa) * ba * cb
                                dst[o + c] = UInt8(min(255, max(0, co / oa)).rounded())
                            }
                            dst[o + 3] = UInt8(min(255, oa * 255).rounded())
                        }
                    }
                }
            }
        }
        return out
    }
}

/// A separable resize of images of `channels` interleaved float channels: along each axis an area (box) average of
/// the source pixels a target pixel covers, in exact fractions, when the axis shrinks or keeps its size; bilinear
/// between the two nearest source pixel centres (the edge pixels held) when it grows. Rows of the source are read
/// one at a time and the result handed on a row at a time, so a full-size source or target is never held as floats.
struct SeparableResize {
    /// One axis: for target index i, the source indices `index[start[i]..<start[i + 1]]` with weights summing to 1.
    struct Axis {
        var start: [Int] = [0]
        var index: [Int] = []
        var weight: [Float] = []

        init(from source: Int, to target: Int) {
            let scale = Double(source) / Double(target)
            for i in 0..<target {
                if target <= source {
                    // Source pixel j covers [j, j + 1); target pixel i covers [i * scale, (i + 1) * scale).
                    let (from, to) = (Double(i) * scale, Double(i + 1) * scale)
                    for j in Int(from)..<min(source, Int(to.rounded(.up))) {
                        let overlap = min(to, Double(j + 1)) - max(from, Double(j))
                        if overlap > 0 {
                            index.append(j)
                            weight.append(Float(overlap / scale))
                        }
                    }
                } else {
                    let centre = min(Double(source - 1), max(0, (Double(i) + 0.5) * scale - 0.5))
                    let j = Int(centre), t = Float(centre - Double(j))
                    index.append(j)
                    weight.append(1 - t)
                    if t > 0 && j + 1 < source {
                        index.append(j + 1)
                        weight.append(t)
                    }
                }
                start.append(index.count)
            }
        }
    }

    let source: (width: Int, height: Int)
    let target: (width: Int, height: Int)
    let channels: Int
    let horizontal: Axis
    let vertical: Axis

    init(from source: (Int, Int), to target: (Int, Int), channels: Int) {
        self.source = source
        self.target = target
        self.channels = channels
        horizontal = Axis(from: source.0, to: target.0)
        vertical = Axis(from: source.1, to: target.1)
    }

    /// Runs the resize: `sourceRow(y, row)` fills source row y (width * channels values); `targetRow(y, row)` gets
    /// target row y. Polls `context` every source and every target row.
    func run(sourceRow: (Int, UnsafeMutableBufferPointer<Float>) -> Void,
             targetRow: (Int, UnsafeBufferPointer<Float>) -> Void, context: JobContext) throws(ProtocolError) {
        let ch = channels, (sw, sh) = source, (tw, th) = target
        // Source rows resized horizontally, all of them (source height x target width).
        var narrowed = [Float](repeating: 0, count: sh * tw * ch)
        var row = [Float](repeating: 0, count: sw * ch)
        var out = [Float](repeating: 0, count: tw * ch)
        try row.withUnsafeMutableBufferPointer { (row) throws(ProtocolError) in
            try narrowed.withUnsafeMutableBufferPointer { (narrowed) throws(ProtocolError) in
                for y in 0..<sh {
                    try context.checkCancellation()
                    sourceRow(y, row)
                    let base = y * tw * ch
                    for x in 0..<tw {
                        for k in horizontal.start[x]..<horizontal.start[x + 1] {
                            let from = horizontal.index[k] * ch, w = horizontal.weight[k]
                            for c in 0..<ch { narrowed[base + x * ch + c] += w * row[from + c] }
                        }
                    }
                }
                try out.withUnsafeMutableBufferPointer { (out) throws(ProtocolError) in
                    for y in 0..<th {
                        try context.checkCancellation()
                        for i in 0..<out.count { out[i] = 0 }
                        for k in vertical.start[y]..<vertical.start[y + 1] {
                            let from = vertical.index[k] * tw * ch, w = vertical.weight[k]
                            for i in 0..<out.count { out[i] += w * narrowed[from + i] }
                        }
                        targetRow(y, UnsafeBufferPointer(out))
                    }
                }
            }
        }
    }
}
