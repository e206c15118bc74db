// PaintsRaster/PNGCodec: PNG bytes <-> RGBAImage through libpng's simplified API (no setjmp/longjmp crosses Swift).
import CPNG
import Foundation

public enum PNGCodec {
    /// Width and height from the PNG header, without decoding pixels.
    public static func dimensions(of data: Data) throws(RasterError) -> (width: Int, height: Int) {
        var image = png_image()
        image.version = CPNG_IMAGE_VERSION
        defer { png_image_free(&image) }
        let ok = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard ok != 0 else { throw RasterError.decodeFailed(message(of: image)) }
        return (Int(image.width), Int(image.height))
    }

    /// Decodes a PNG of any colour type and bit depth to 8-bit straight RGBA.
    /// - Parameter maxPixels: checked against the header before any pixel memory is allocated.
    public static func decode(_ data: Data, maxPixels: Int = Int.max) throws(RasterError) -> RGBAImage {
        // libpng keeps the pointer given to begin_read until finish_read: both happen inside one pointer scope.
        let decoded: Result<RGBAImage, RasterError> = data.withUnsafeBytes { bytes in
            var image = png_image()
            image.version = CPNG_IMAGE_VERSION
            defer { png_image_free(&image) }
            guard png_image_begin_read_from_memory(&image, bytes.baseAddress, bytes.count) != 0 else {
                return .failure(.decodeFailed(message(of: image)))
            }
            let width = Int(image.width), height = Int(image.height)
            guard width > 0, height > 0 else { return .failure(.invalidDimensions(width: width, height: height)) }
            guard width.multipliedReportingOverflow(by: height).partialValue <= maxPixels,
                  width <= Int(Int32.max) / height
            else { return .failure(.tooLarge(width: width, height: height, maxPixels: maxPixels)) }
            image.format = CPNG_FORMAT_RGBA
            var pixels = [UInt8](repeating: 0, count: width * height * 4)
            let finished = pixels.withUnsafeMutableBytes { buffer in
                png_image_finish_read(&image, nil, buffer.baseAddress, Int32(width * 4), nil)
            }
            guard finished != 0 else { return .failure(.decodeFailed(message(of: image))) }
            return Result { () throws(RasterError) in try RGBAImage(width: width, height: height, pixels: pixels) }
        }
        return try decoded.get()
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
