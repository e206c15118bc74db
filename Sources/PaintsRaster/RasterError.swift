// PaintsRaster/RasterError: why an image could not be read, written or combined.

public enum RasterError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidDimensions(width: Int, height: Int)
    case byteCountMismatch(expected: Int, actual: Int)
    /// The bytes are not a PNG libpng can decode; the text is libpng's message.
    case decodeFailed(String)
    case encodeFailed(String)
    /// The image declares more pixels than allowed (found from the header, before decoding).
    case tooLarge(width: Int, height: Int, maxPixels: Int)
    case sizeMismatch(expected: (Int, Int), actual: (Int, Int))
    case io(path: String, message: String)

    public static func == (a: RasterError, b: RasterError) -> Bool { a.description == b.description }

    public var description: String {
        switch self {
        case .invalidDimensions(let w, let h): "invalid image dimensions \(w)x\(h)"
        case .byteCountMismatch(let e, let a): "expected \(e) bytes of RGBA pixels, got \(a)"
        case .decodeFailed(let m): "PNG decode failed: \(m)"
        case .encodeFailed(let m): "PNG encode failed: \(m)"
        case .tooLarge(let w, let h, let max): "image is \(w)x\(h) = \(w * h) pixels, over the limit of \(max)"
        case .sizeMismatch(let e, let a): "image is \(a.0)x\(a.1), expected \(e.0)x\(e.1)"
        case .io(let path, let m): "\(path): \(m)"
        }
    }
}
