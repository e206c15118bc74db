// PaintsRaster/OKLab: 8-bit sRGB colours to Björn Ottosson's OKLab perceptual colour space and back.
import Foundation

/// A colour in OKLab (Björn Ottosson, "A perceptual color space for image processing", 2020): `l` is perceived
/// lightness (0 black, 1 white), `a` green (-) to red (+), `b` blue (-) to yellow (+). Differences of a few
/// hundredths are about what an eye notices, in lightness and hue alike.
public struct OKLab: Sendable, Hashable, CustomStringConvertible {
    public var l: Float
    public var a: Float
    public var b: Float

    public init(l: Float, a: Float, b: Float) {
        self.l = l
        self.a = a
        self.b = b
    }

    /// The OKLab coordinates of an 8-bit sRGB colour (alpha ignored).
    public init(_ colour: RGBA) {
        self.init(linearRed: SRGB.linear(colour.r), green: SRGB.linear(colour.g), blue: SRGB.linear(colour.b))
    }

    /// The OKLab coordinates of linear-light sRGB (0...1 in gamut): Ottosson's M1 to cone responses, cube root, M2.
    public init(linearRed r: Float, green g: Float, blue b: Float) {
        let lCone = cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b)
        let mCone = cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b)
        let sCone = cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b)
        l = 0.2104542553 * lCone + 0.7936177850 * mCone - 0.0040720468 * sCone
        a = 1.9779984951 * lCone - 2.4285922050 * mCone + 0.4505937099 * sCone
        self.b = 0.0259040371 * lCone + 0.7827717662 * mCone - 0.8086757660 * sCone
    }

    /// Linear-light sRGB of this colour, unclipped (outside 0...1 when the colour is out of the sRGB gamut).
    public var linearRGB: (red: Float, green: Float, blue: Float) {
        let lCone = l + 0.3963377774 * a + 0.2158037573 * b
        let mCone = l - 0.1055613458 * a - 0.0638541728 * b
        let sCone = l - 0.0894841775 * a - 1.2914855480 * b
        let (lc, mc, sc) = (lCone * lCone * lCone, mCone * mCone * mCone, sCone * sCone * sCone)
        return (4.0767416621 * lc - 3.3077115913 * mc + 0.2309699292 * sc,
                -1.2684380046 * lc + 2.6097574011 * mc - 0.3413193965 * sc,
                -0.0041960863 * lc - 0.7034186147 * mc + 1.7076147010 * sc)
    }

    /// The nearest 8-bit sRGB colour, each linear channel clipped to 0...1 (out-of-gamut colours keep their hue only
    /// roughly), with the given alpha.
    public func rgba(alpha: UInt8 = 255) -> RGBA {
        let (r, g, b) = linearRGB
        return RGBA(SRGB.encoded(r), SRGB.encoded(g), SRGB.encoded(b), alpha)
    }

    public var description: String { "OKLab(\(l), \(a), \(b))" }
}

/// The sRGB transfer function (IEC 61966-2-1) on 8-bit channel values.
public enum SRGB {
    /// Linear light (0...1) of each 8-bit channel value.
    public static let linearTable: [Float] = (0..<256).map { decode(Double($0) / 255) }

    /// Linear light of the 8-bit value halfway between v and v + 1, for v in 0..<255: `encoded` rounds by these.
    static let roundingBounds: [Float] = (0..<255).map { decode((Double($0) + 0.5) / 255) }

    /// Buckets of `encoded`'s search: for linear light in [k / 4096, (k + 1) / 4096), the count of rounding bounds
    /// below k / 4096. Bounds are at least 1.2 buckets apart: at most one lies in a bucket, passed in a step.
    static let bucketCount = 4096
    static let firstCandidate: [UInt8] = (0..<bucketCount).map { k in
        UInt8(roundingBounds.filter { $0 < Float(k) / Float(bucketCount) }.count)
    }

    /// Linear light (0...1) of an 8-bit sRGB channel value.
    @inlinable public static func linear(_ value: UInt8) -> Float { linearTable[Int(value)] }

    /// The 8-bit sRGB channel value nearest to `linear` light (clipped to 0...1): the value whose rounding interval in
    /// encoded space holds it, found among the interval bounds, so encoding a decoded value gives it back exactly.
    public static func encoded(_ linear: Float) -> UInt8 {
        guard linear > 0 else { return 0 }
        guard linear < 1 else { return 255 }
        var value = Int(firstCandidate[Int(linear * Float(bucketCount))])
        while value < 255 && roundingBounds[value] < linear { value += 1 }
        return UInt8(value)
    }

    /// Encoded sRGB (0...1) to linear light.
    static func decode(_ v: Double) -> Float {
        Float(v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4))
    }
}
