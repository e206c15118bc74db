// PaintsEngine/LineArtHint: the user's line art as the control image line-art ControlNets take (white lines on black).
import PaintsProtocol
import PaintsRaster
import PaintsTensor

/// The control image of a line-art ControlNet from the user's line-art layer.
public enum LineArtHint {
    /// `sketch` as white lines on black at `width` x `height`: a [1, 3, height, width] tensor in 0...1, the same grey in
    /// all three channels. Each pixel's ink is its line strength as the built-in fill reads it (`LineArt.strength`:
    /// opacity times darkness), so dark lines on white paper and the same lines on a transparent layer give the same
    /// image, and anti-aliased edges keep their intermediate values. Resized with an area (box) average along an axis
    /// that shrinks, exact in fractions of a pixel (a 1-pixel line at a quarter of the size reads 0.25, not 0 or 1),
    /// bilinear along one that grows. Polls `context` every row.
    public static func controlImage(_ sketch: RGBAImage, width: Int, height: Int,
                                    context: JobContext) throws(ProtocolError) -> Tensor {
        guard width > 0, height > 0 else {
            throw ProtocolError(.internalError, "control image: size \(width)x\(height)")
        }
        var out = Tensor(zeros: [1, 3, height, width])
        let plane = width * height
        let resize = SeparableResize(from: (sketch.width, sketch.height), to: (width, height), channels: 1)
        try sketch.pixels.withUnsafeBufferPointer { (px) throws(ProtocolError) in
            try out.data.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
                try resize.run(sourceRow: { y, row in
                    let start = y * sketch.width
                    for x in 0..<sketch.width {
                        let o = (start + x) * 4
                        row[x] = LineArt.strength(r: Float(px[o]), g: Float(px[o + 1]), b: Float(px[o + 2]),
                                                  alpha: px[o + 3])
                    }
                }, targetRow: { y, row in
                    for x in 0..<width {
                        let ink = min(1, max(0, row[x])), p = y * width + x
                        dst[p] = ink
                        dst[plane + p] = ink
                        dst[2 * plane + p] = ink
                    }
                }, context: context)
            }
        }
        return out
    }
}
