// PaintsRaster/RGBAImage: an 8-bit RGBA image (straight alpha, row-major) as a Sendable value.

/// An 8-bit RGBA raster with straight (not premultiplied) alpha, rows top to bottom.
public struct RGBAImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// width * height * 4 bytes: R, G, B, A per pixel.
    public var pixels: [UInt8]

    /// A raster filled with one colour.
    public init(width: Int, height: Int, fill: RGBA = .transparent) {
        precondition(width > 0 && height > 0, "image dimensions must be positive")
        self.width = width
        self.height = height
        pixels = [UInt8](repeating: 0, count: width * height * 4)
        if fill != .transparent {
            for i in 0..<(width * height) { setPixel(i, fill) }
        }
    }

    /// Wraps existing bytes; throws when the count is not width*height*4.
    public init(width: Int, height: Int, pixels: [UInt8]) throws(RasterError) {
        guard width > 0, height > 0 else { throw RasterError.invalidDimensions(width: width, height: height) }
        guard pixels.count == width * height * 4 else {
            throw RasterError.byteCountMismatch(expected: width * height * 4, actual: pixels.count)
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public var pixelCount: Int { width * height }

    @inlinable public func pixel(_ index: Int) -> RGBA {
        let o = index * 4
        return RGBA(pixels[o], pixels[o + 1], pixels[o + 2], pixels[o + 3])
    }

    @inlinable public func pixel(x: Int, y: Int) -> RGBA { pixel(y * width + x) }

    @inlinable public mutating func setPixel(_ index: Int, _ c: RGBA) {
        let o = index * 4
        pixels[o] = c.r
        pixels[o + 1] = c.g
        pixels[o + 2] = c.b
        pixels[o + 3] = c.a
    }

    @inlinable public mutating func setPixel(x: Int, y: Int, _ c: RGBA) { setPixel(y * width + x, c) }

    /// Whether every pixel is fully opaque.
    public var isOpaque: Bool {
        var i = 3
        while i < pixels.count {
            if pixels[i] != 255 { return false }
            i += 4
        }
        return true
    }
}

/// One straight-alpha RGBA colour.
public struct RGBA: Sendable, Hashable, CustomStringConvertible {
    public var r: UInt8, g: UInt8, b: UInt8, a: UInt8

    @inlinable public init(_ r: UInt8, _ g: UInt8, _ b: UInt8, _ a: UInt8 = 255) {
        self.r = r
        self.g = g
        self.b = b
        self.a = a
    }

    public static let transparent = RGBA(0, 0, 0, 0)
    public static let white = RGBA(255, 255, 255)
    public static let black = RGBA(0, 0, 0)

    /// Rec. 601 luma in 0...1.
    @inlinable public var luminance: Float {
        (0.299 * Float(r) + 0.587 * Float(g) + 0.114 * Float(b)) / 255
    }

    /// Squared RGB distance (alpha ignored).
    @inlinable public func distanceSquared(to o: RGBA) -> Int {
        let dr = Int(r) - Int(o.r), dg = Int(g) - Int(o.g), db = Int(b) - Int(o.b)
        return dr * dr + dg * dg + db * db
    }

    /// "#rrggbb" or "#rrggbbaa" when not opaque.
    public var description: String {
        let hex = [r, g, b] + (a == 255 ? [] : [a])
        return "#" + hex.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}
