// PaintsEngine/LineArtBlueprint: the user's line art as SDRO's blueprint: binarised by the reference app's adaptive
// threshold, inverted to white lines on black. Matches: stable-diffusion-reference-only app.py get_line_art and
// color_inversion (cv2.cvtColor RGB2GRAY, cv2.adaptiveThreshold(255, ADAPTIVE_THRESH_MEAN_C, THRESH_BINARY,
// blockSize=5, C=7), 255 - x), which its training script applies to every training line art too.
import PaintsProtocol
import PaintsRaster
import PaintsTensor

public enum LineArtBlueprint {
    /// OpenCV's 8-bit RGB to grey (color.hpp: R2Y 4899, G2Y 9617, B2Y 1868, yuv_shift 14, rounded: x + 2^13 >> 14),
    /// one byte per pixel, row-major. A layer with transparency is flattened over white first, as it looks.
    public static func grey(_ image: RGBAImage) -> [UInt8] {
        let opaque = image.flattened(onto: .white)
        var out = [UInt8](repeating: 0, count: image.width * image.height)
        opaque.pixels.withUnsafeBufferPointer { px in
            for p in out.indices {
                let o = p * 4
                let r: Int = Int(px[o]) * 4899, g: Int = Int(px[o + 1]) * 9617, b: Int = Int(px[o + 2]) * 1868
                out[p] = UInt8((r + g + b + 8192) >> 14)
            }
        }
        return out
    }

    /// cv2.adaptiveThreshold(grey, 255, ADAPTIVE_THRESH_MEAN_C, THRESH_BINARY, blockSize, c) on 8-bit grey: 0 (a line)
    /// where a pixel is at least ceil(c) darker than the mean of the `blockSize` x `blockSize` square around it, 255
    /// (paper) elsewhere: 255 where `src - mean > -ceil(c)`. The mean is OpenCV's normalised 8-bit box filter with the border replicated,
    /// rounded to the nearest integer (its fixed-point `(sum + 13) * 335544 >> 23` for 5x5 equals `(sum + 12) / 25`:
    /// a sum of 25 integers never divides to exactly .5). Polls `context` every row.
    public static func adaptiveThreshold(_ grey: [UInt8], width: Int, height: Int, blockSize: Int = 5, c: Double = 7,
                                         context: JobContext) throws(ProtocolError) -> [UInt8] {
        guard blockSize % 2 == 1, blockSize > 1, width > 0, height > 0, grey.count == width * height else {
            throw ProtocolError(.internalError, "adaptive threshold: block \(blockSize), \(grey.count) values for \(width)x\(height)")
        }
        let r = blockSize / 2, area = blockSize * blockSize
        let delta = Int(c.rounded(.up))
        // Column sums of the window rows, then a sliding sum along each row; the border replicated on both axes.
        var columns = [Int](repeating: 0, count: width)
        var out = [UInt8](repeating: 0, count: width * height)
        func row(_ y: Int) -> Int { min(height - 1, max(0, y)) }
        for y in -r...r {
            let base = row(y) * width
            for x in 0..<width { columns[x] += Int(grey[base + x]) }
        }
        for y in 0..<height {
            try context.checkCancellation()
            if y > 0 {
                let leaving = row(y - r - 1) * width, entering = row(y + r) * width
                for x in 0..<width { columns[x] += Int(grey[entering + x]) - Int(grey[leaving + x]) }
            }
            var sum = 0
            for x in -r...r { sum += columns[min(width - 1, max(0, x))] }
            let base = y * width
            for x in 0..<width {
                if x > 0 { sum += columns[min(width - 1, x + r)] - columns[max(0, x - r - 1)] }
                let mean = (sum + area / 2) / area
                out[base + x] = Int(grey[base + x]) - mean > -delta ? 255 : 0
            }
        }
        return out
    }

    /// The blueprint of `sketch` at `width` x `height`: grey, thresholded at the sketch's own resolution (as the
    /// reference binarises its line art before resizing it), inverted (lines 1, paper 0), then resized with an area
    /// average (bilinear along an axis that grows): [1, 3, height, width] in 0...1, the same value in all three channels.
    public static func blueprint(_ sketch: RGBAImage, width: Int, height: Int, context: JobContext) throws(ProtocolError) -> Tensor {
        guard width > 0, height > 0 else { throw ProtocolError(.internalError, "blueprint: size \(width)x\(height)") }
        let binary = try adaptiveThreshold(grey(sketch), width: sketch.width, height: sketch.height, context: context)
        var out = Tensor(zeros: [1, 3, height, width])
        let plane = width * height
        let resize = SeparableResize(from: (sketch.width, sketch.height), to: (width, height), channels: 1)
        try out.data.withUnsafeMutableBufferPointer { (dst) throws(ProtocolError) in
            try resize.run(sourceRow: { y, row in
                let start = y * sketch.width
                for x in 0..<sketch.width { row[x] = Float(255 - binary[start + x]) / 255 }
            }, targetRow: { y, row in
                for x in 0..<width {
                    let v = min(1, max(0, row[x])), p = y * width + x
                    dst[p] = v
                    dst[plane + p] = v
                    dst[2 * plane + p] = v
                }
            }, context: context)
        }
        return out
    }
}
