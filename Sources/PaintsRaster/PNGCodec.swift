// PaintsRaster/PNGCodec: PNG bytes <-> RGBAImage through libpng. Decoding uses libpng's full read API inside one C
// function of the CPNG shim (cpng_decode_rgba8: its setjmp/longjmp stays in C); encoding uses the simplified API.
import CPNG
import Foundation

public enum PNGCodec {
    /// Width and height from the PNG header, without decoding pixels.
    public static func dimensions(of data: Data) throws(RasterError) -> (width: Int, height: Int) {
        let (status, width, height, message) = run(data, maxPixels: .max, into: nil)
        guard status == CPNG_DECODE_OK || status == CPNG_DECODE_TOO_LARGE else { throw RasterError.decodeFailed(message) }
        return (width, height)
    }

    /// Decodes a PNG of any colour type and bit depth to 8-bit straight RGBA: the stored samples, with no colour
    /// management (gAMA, cHRM, sRGB and iCCP are ignored); 16-bit samples are rounded to 8 bits.
    /// - Parameter maxPixels: checked against the header before any pixel memory is allocated.
    public static func decode(_ data: Data, maxPixels: Int = Int.max) throws(RasterError) -> RGBAImage {
        let limit = UInt64(max(maxPixels, 0))
        let header = run(data, maxPixels: limit, into: nil)
        let width = header.width, height = header.height
        if header.status == CPNG_DECODE_TOO_LARGE {
            throw RasterError.tooLarge(width: width, height: height, maxPixels: maxPixels)
        }
        guard header.status == CPNG_DECODE_OK else { throw RasterError.decodeFailed(header.message) }
        guard width > 0, height > 0 else { throw RasterError.invalidDimensions(width: width, height: height) }
        guard width <= Int(Int32.max) / height else {
            throw RasterError.tooLarge(width: width, height: height, maxPixels: maxPixels)
        }
        var result = (status: CPNG_DECODE_FAILED, width: 0, height: 0, message: "")
        let pixels = [UInt8](unsafeUninitializedCapacity: width * height * 4) { buffer, initialized in
            result = run(data, maxPixels: limit, into: UnsafeMutableRawBufferPointer(buffer))
            // On failure libpng may have written some rows: the array is discarded either way.
            initialized = buffer.count
        }
        guard result.status == CPNG_DECODE_OK, result.width == width, result.height == height else {
            throw RasterError.decodeFailed(result.message.isEmpty ? "PNG changed between reads" : result.message)
        }
        return try RGBAImage(width: width, height: height, pixels: pixels)
    }

    /// One call of cpng_decode_rgba8: the header only when `buffer` is nil, else the pixels into `buffer`.
    private static func run(_ data: Data, maxPixels: UInt64, into buffer: UnsafeMutableRawBufferPointer?)
        -> (status: Int32, width: Int, height: Int, message: String)
    {
        var width: png_uint_32 = 0, height: png_uint_32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { bytes in
            message.withUnsafeMutableBufferPointer { text in
                cpng_decode_rgba8(bytes.baseAddress, bytes.count, maxPixels,
                                  buffer?.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer?.count ?? 0,
                                  &width, &height, text.baseAddress, text.count)
            }
        }
        let text = String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (status, Int(width), Int(height), text.isEmpty ? "not a PNG" : text)
    }

    /// Encodes to an 8-bit RGBA PNG. `fast` trades size for speed (libpng's PNG_IMAGE_FLAG_FAST).
    public static func encode(_ raster: RGBAImage, fast: Bool = true) throws(RasterError) -> Data {
        var image = png_image()
        image.version = CPNG_IMAGE_VERSION
        image.width = png_uint_32(raster.width)
        image.height = png_uint_32(raster.height)
        image.format = CPNG_FORMAT_RGBA
        if fast { image.flags = CPNG_IMAGE_FLAG_FAST }
        defer { png_image_free(&image) }
        var size: png_alloc_size_t = 0
        let stride = Int32(raster.width * 4)
        let sized = raster.pixels.withUnsafeBytes {
            png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, stride, nil)
        }
        guard sized != 0, size > 0 else { throw RasterError.encodeFailed(message(of: image)) }
        var out = Data(count: Int(size))
        let written = out.withUnsafeMutableBytes { buffer in
            raster.pixels.withUnsafeBytes {
                png_image_write_to_memory(&image, buffer.baseAddress, &size, 0, $0.baseAddress, stride, nil)
            }
        }
        guard written != 0 else { throw RasterError.encodeFailed(message(of: image)) }
        out.count = Int(size)
        return out
    }

    public static func read(path: String, maxPixels: Int = Int.max) throws(RasterError) -> RGBAImage {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw RasterError.io(path: path, message: error.localizedDescription)
        }
        return try decode(data, maxPixels: maxPixels)
    }

    public static func write(_ raster: RGBAImage, path: String, fast: Bool = false) throws(RasterError) {
        let data = try encode(raster, fast: fast)
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw RasterError.io(path: path, message: error.localizedDescription)
        }
    }

    private static func message(of image: png_image) -> String {
        var m = image.message
        return withUnsafeBytes(of: &m) { raw in
            let bytes = raw.prefix(while: { $0 != 0 })
            return bytes.isEmpty ? "not a PNG" : String(decoding: bytes, as: UTF8.self)
        }
    }
}
