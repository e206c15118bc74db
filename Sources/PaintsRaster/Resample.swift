// PaintsRaster/Resample: scaling (bilinear, area), cropping and padding of RGBA rasters.

extension RGBAImage {
    /// Bilinear resize (alpha-weighted, so transparent pixels do not bleed their colour). Same size returns self.
    public func resized(width newWidth: Int, height newHeight: Int) -> RGBAImage {
        if newWidth == width && newHeight == height { return self }
        if newWidth * 2 <= width || newHeight * 2 <= height {
            return areaDownscaled(width: newWidth, height: newHeight)
        }
        var out = RGBAImage(width: newWidth, height: newHeight)
        let sx = Float(width) / Float(newWidth), sy = Float(height) / Float(newHeight)
        for y in 0..<newHeight {
            let fy = max(0, (Float(y) + 0.5) * sy - 0.5)
            let y0 = min(Int(fy), height - 1), y1 = min(y0 + 1, height - 1)
            let wy = fy - Float(y0)
            for x in 0..<newWidth {
                let fx = max(0, (Float(x) + 0.5) * sx - 0.5)
                let x0 = min(Int(fx), width - 1), x1 = min(x0 + 1, width - 1)
                let wx = fx - Float(x0)
                var acc: (Float, Float, Float, Float) = (0, 0, 0, 0)
                for (px, py, w) in [(x0, y0, (1 - wx) * (1 - wy)), (x1, y0, wx * (1 - wy)), (x0, y1, (1 - wx) * wy), (x1, y1, wx * wy)] {
                    let c = pixel(x: px, y: py)
                    let aw = w * Float(c.a)
                    acc.0 += Float(c.r) * aw
                    acc.1 += Float(c.g) * aw
                    acc.2 += Float(c.b) * aw
                    acc.3 += aw
                }
                out.setPixel(x: x, y: y, Self.unpremultiplied(acc))
            }
        }
        return out
    }

    /// Box-filter (area average) downscale, alpha-weighted.
    public func areaDownscaled(width newWidth: Int, height newHeight: Int) -> RGBAImage {
        var out = RGBAImage(width: newWidth, height: newHeight)
        for y in 0..<newHeight {
            let ya = y * height / newHeight, yb = max(ya + 1, (y + 1) * height / newHeight)
            for x in 0..<newWidth {
                let xa = x * width / newWidth, xb = max(xa + 1, (x + 1) * width / newWidth)
                var acc: (Float, Float, Float, Float) = (0, 0, 0, 0)
                for sy in ya..<yb {
                    for sx in xa..<xb {
                        let c = pixel(x: sx, y: sy)
                        let a = Float(c.a)
                        acc.0 += Float(c.r) * a
                        acc.1 += Float(c.g) * a
                        acc.2 += Float(c.b) * a
                        acc.3 += a
                    }
                }
                let n = Float((yb - ya) * (xb - xa))
                out.setPixel(x: x, y: y, Self.unpremultiplied((acc.0, acc.1, acc.2, acc.3), count: n))
            }
        }
        return out
    }

    /// Converts alpha-weighted sums back to a straight-alpha colour. `count` is the total weight when it is not 1.
    static func unpremultiplied(_ acc: (Float, Float, Float, Float), count: Float = 1) -> RGBA {
        guard acc.3 > 0 else { return .transparent }
        func c(_ v: Float) -> UInt8 { UInt8(max(0, min(255, (v / acc.3).rounded()))) }
        return RGBA(c(acc.0), c(acc.1), c(acc.2), UInt8(max(0, min(255, (acc.3 / count).rounded()))))
    }
}

extension RGBAImage {
    /// The rectangle at (x, y) of `width` x `height`, which must lie inside the image.
    public func cropped(x: Int, y: Int, width w: Int, height h: Int) -> RGBAImage {
        precondition(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= width && y + h <= height, "crop outside the image")
        var out = RGBAImage(width: w, height: h)
        for row in 0..<h {
            let from = ((y + row) * width + x) * 4
            out.pixels.replaceSubrange((row * w * 4)..<((row + 1) * w * 4), with: pixels[from..<(from + w * 4)])
        }
        return out
    }

    /// This image pasted at (x, y) on a `width` x `height` canvas of `fill` (pixels replaced, not blended).
    public func padded(toWidth w: Int, height h: Int, x: Int, y: Int, fill: RGBA) -> RGBAImage {
        precondition(x >= 0 && y >= 0 && x + width <= w && y + height <= h, "the image does not fit the canvas")
        var out = RGBAImage(width: w, height: h, fill: fill)
        for row in 0..<height {
            let to = ((y + row) * w + x) * 4
            out.pixels.replaceSubrange(to..<(to + width * 4), with: pixels[(row * width * 4)..<((row + 1) * width * 4)])
        }
        return out
    }
}
