// PaintsRaster/Compositing: Porter-Duff "over" of straight-alpha colours and whole layers.

extension RGBA {
    /// `self` over `below`, straight alpha in and out.
    @inlinable public func over(_ below: RGBA) -> RGBA {
        let sa = Float(a) / 255, da = Float(below.a) / 255
        let oa = sa + da * (1 - sa)
        guard oa > 0 else { return .transparent }
        func mix(_ s: UInt8, _ d: UInt8) -> UInt8 {
            UInt8(max(0, min(255, ((Float(s) * sa + Float(d) * da * (1 - sa)) / oa).rounded())))
        }
        return RGBA(mix(r, below.r), mix(g, below.g), mix(b, below.b), UInt8((oa * 255).rounded()))
    }

    /// Linear interpolation towards `other` by `t` in 0...1, every channel.
    @inlinable public func mixed(with other: RGBA, _ t: Float) -> RGBA {
        func m(_ x: UInt8, _ y: UInt8) -> UInt8 { UInt8(max(0, min(255, (Float(x) + (Float(y) - Float(x)) * t).rounded()))) }
        return RGBA(m(r, other.r), m(g, other.g), m(b, other.b), m(a, other.a))
    }
}

extension RGBAImage {
    /// `top` over this image; both must be the same size.
    public func composited(under top: RGBAImage) throws(RasterError) -> RGBAImage {
        guard top.width == width, top.height == height else {
            throw RasterError.sizeMismatch(expected: (width, height), actual: (top.width, top.height))
        }
        var out = self
        for i in 0..<pixelCount { out.setPixel(i, top.pixel(i).over(pixel(i))) }
        return out
    }
}

extension RGBAImage {
    /// This image laid over an opaque `background` (itself when already opaque).
    public func flattened(onto background: RGBA) -> RGBAImage {
        if isOpaque { return self }
        var out = self
        for i in 0..<pixelCount { out.setPixel(i, pixel(i).over(background)) }
        return out
    }
}
