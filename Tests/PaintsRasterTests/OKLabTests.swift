// OKLab conversion against published reference values (Ottosson's matrices as CSS Color 4 and color.js give them), and
// round trips of 8-bit sRGB.
import Foundation
import PaintsRaster
import Testing

@Suite struct OKLabTests {
    static func close(_ lab: OKLab, _ l: Float, _ a: Float, _ b: Float, within tolerance: Float) -> Bool {
        abs(lab.l - l) <= tolerance && abs(lab.a - a) <= tolerance && abs(lab.b - b) <= tolerance
    }

    /// sRGB white, black, mid grey and the primaries in OKLab, as published (color.js, CSS Color 4: red is
    /// oklch(62.8% 0.2577 29.23deg)).
    @Test func matchesPublishedValues() {
        let references: [(RGBA, Float, Float, Float)] = [
            (.white, 1, 0, 0),
            (.black, 0, 0, 0),
            (RGBA(255, 0, 0), 0.62795536, 0.22486306, 0.12584630),
            (RGBA(0, 255, 0), 0.86643961, -0.23388757, 0.17949848),
            (RGBA(0, 0, 255), 0.45201372, -0.03245698, -0.31152815),
            (RGBA(128, 128, 128), 0.599871, 0, 0),
        ]
        for (colour, l, a, b) in references {
            let lab = OKLab(colour)
            #expect(Self.close(lab, l, a, b, within: 2e-4), "\(colour): \(lab), expected (\(l), \(a), \(b))")
        }
        let red = OKLab(RGBA(255, 0, 0))
        #expect(abs((red.a * red.a + red.b * red.b).squareRoot() - 0.2577) < 2e-4)
        #expect(abs(atan2(Double(red.b), Double(red.a)) * 180 / Double.pi - 29.23) < 0.02)
    }

    /// The sRGB transfer function: published points of IEC 61966-2-1.
    @Test func decodesAndEncodesTheSRGBCurve() {
        #expect(SRGB.linear(0) == 0)
        #expect(SRGB.linear(255) == 1)
        #expect(abs(SRGB.linear(128) - 0.21586) < 1e-5)
        #expect(abs(SRGB.linear(10) - 10.0 / 255 / 12.92) < 1e-7)  // the linear segment
        #expect(SRGB.encoded(0.5) == 188)  // 1.055 * 0.5^(1/2.4) - 0.055 = 0.7354 -> 187.5...
        #expect(SRGB.encoded(0.2) == 124)  // 0.4845 -> 123.6
        #expect(SRGB.encoded(-0.3) == 0)
        #expect(SRGB.encoded(1.7) == 255)
        for v in 0...255 { #expect(SRGB.encoded(SRGB.linear(UInt8(v))) == UInt8(v)) }
    }

    /// Every colour of a 52-step grid in each channel, and every grey and pure ramp, comes back exactly.
    @Test func roundTripsEightBitColours() {
        var colours: [RGBA] = []
        for r in stride(from: 0, through: 255, by: 5) {
            for g in stride(from: 0, through: 255, by: 5) {
                for b in stride(from: 0, through: 255, by: 5) { colours.append(RGBA(UInt8(r), UInt8(g), UInt8(b))) }
            }
        }
        for v in 0...255 {
            let c = UInt8(v)
            colours += [RGBA(c, c, c), RGBA(c, 0, 0), RGBA(0, c, 0), RGBA(0, 0, c), RGBA(c, 255, 255 - c)]
        }
        var failures: [RGBA] = []
        for colour in colours where OKLab(colour).rgba() != colour { failures.append(colour) }
        #expect(failures.isEmpty, "\(failures.count) colours changed, e.g. \(failures.prefix(5))")
        #expect(OKLab(RGBA(10, 20, 30)).rgba(alpha: 77) == RGBA(10, 20, 30, 77))
    }

    /// Out of gamut: clipped per channel, never wrapped.
    @Test func clipsColoursOutsideTheGamut() {
        #expect(OKLab(l: 1.5, a: 0, b: 0).rgba() == .white)
        #expect(OKLab(l: -0.2, a: 0, b: 0).rgba() == .black)
        // Linear (2.02, -0.35, -0.10): beyond red.
        #expect(OKLab(l: 0.63, a: 0.45, b: 0.25).rgba() == RGBA(255, 0, 0))
    }
}
