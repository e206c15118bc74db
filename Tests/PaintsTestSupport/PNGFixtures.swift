// PaintsTestSupport/PNGFixtures: hand-built PNG byte streams for decoder tests (huge headers, corruption).
import Foundation

public enum PNGFixtures {
    /// A PNG declaring `width`x`height` RGBA (valid IHDR with CRC) followed by a tiny IDAT and IEND: what a hostile
    /// client sends to make a decoder allocate width*height*4 bytes.
    public static func headerOnly(width: UInt32, height: UInt32) -> Data {
        var ihdr = Data("IHDR".utf8)
        for v in [width, height] { ihdr.append(contentsOf: withUnsafeBytes(of: v.bigEndian, Array.init)) }
        ihdr.append(contentsOf: [8, 6, 0, 0, 0])
        var png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        png.append(contentsOf: withUnsafeBytes(of: UInt32(13).bigEndian, Array.init))
        png.append(ihdr)
        png.append(contentsOf: withUnsafeBytes(of: crc32(ihdr).bigEndian, Array.init))
        for (kind, body) in [("IDAT", Data([0x78, 0x9C, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01])), ("IEND", Data())] {
            let chunk = Data(kind.utf8) + body
            png.append(contentsOf: withUnsafeBytes(of: UInt32(body.count).bigEndian, Array.init))
            png.append(chunk)
            png.append(contentsOf: withUnsafeBytes(of: crc32(chunk).bigEndian, Array.init))
        }
        return png
    }

    /// CRC-32 as PNG chunks use it (ISO 3309, reflected, 0xEDB88320).
    public static func crc32(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// A valid PNG with its image data cut in half.
    public static func truncated(_ png: Data) -> Data { png.prefix(png.count / 2) }
}
