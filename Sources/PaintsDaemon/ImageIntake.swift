// PaintsDaemon/ImageIntake: turns image references into checked payloads (cheap, on the socket thread) and pixels (workers).
import Foundation
import Glibc
import PaintsProtocol
import PaintsRaster
import PaintsTensor

/// An image of a request whose bytes were found and whose header was checked, not yet decoded.
public struct ImagePayload: Sendable {
    public var param: String
    public var bytes: Data
    public var encoding: ImageEncoding
    public var width: Int
    public var height: Int
}

public enum ImageIntake {
    /// Finds the bytes a reference names and checks its size against the limits, without decoding pixels.
    public static func payload(_ reference: ImageReference, param: String, frames: [Data],
                               configuration: DaemonConfiguration) throws(ProtocolError) -> ImagePayload {
        let detail: [String: JSONValue] = ["param": .string(param)]
        let bytes: Data
        let encoding: ImageEncoding
        switch reference {
        case .frame(let index, let e):
            guard index < frames.count else {
                throw ProtocolError(.frameOutOfRange, "\(param): frame \(index) does not exist (the message has frames 1...\(frames.count - 1))",
                                    details: detail.merging(["frame": JSONValue(index), "frames": JSONValue(frames.count)]) { a, _ in a })
            }
            bytes = frames[index]
            encoding = e
        case .base64(let data, let e):
            bytes = data
            encoding = e
        case .path(let path):
            bytes = try readAllowedFile(path, param: param, configuration: configuration)
            encoding = .png
        }
        switch encoding {
        case .rgba8(let width, let height):
            try checkPixels(width, height, param: param, configuration: configuration)
            guard bytes.count == width * height * 4 else {
                throw ProtocolError(.imageDecodeFailed,
                                    "\(param): rgba8 \(width)x\(height) needs \(width * height * 4) bytes, the frame has \(bytes.count)",
                                    details: detail.merging(["expected_bytes": JSONValue(width * height * 4),
                                                             "actual_bytes": JSONValue(bytes.count)]) { a, _ in a })
            }
            return ImagePayload(param: param, bytes: bytes, encoding: encoding, width: width, height: height)
        case .png:
            let size: (width: Int, height: Int)
            do { size = try PNGCodec.dimensions(of: bytes) } catch {
                throw ProtocolError(.imageDecodeFailed, "\(param): \(error)", details: detail)
            }
            try checkPixels(size.width, size.height, param: param, configuration: configuration)
            return ImagePayload(param: param, bytes: bytes, encoding: .png, width: size.width, height: size.height)
        }
    }

    static func checkPixels(_ width: Int, _ height: Int, param: String, configuration: DaemonConfiguration) throws(ProtocolError) {
        let pixels = width.multipliedReportingOverflow(by: height)
        guard !pixels.overflow, pixels.partialValue <= configuration.maxPixels else {
            throw ProtocolError(.imageTooLarge,
                                "\(param): \(width)x\(height) is over the limit of \(configuration.maxPixels) pixels",
                                details: ["param": .string(param), "width": JSONValue(width), "height": JSONValue(height),
                                          "max_pixels": JSONValue(configuration.maxPixels)])
        }
    }

    /// Reads a file only when its resolved path lies under an allowed directory. A path that does not exist and one
    /// outside the allowed directories get the same answer, so a client learns nothing of files it may not read.
    /// Only regular files are opened, never blocking (a named pipe under an allowed directory would stall the socket
    /// thread).
    static func readAllowedFile(_ path: String, param: String, configuration: DaemonConfiguration) throws(ProtocolError) -> Data {
        let refused = ProtocolError(.pathNotAllowed,
                                    "\(param): \(path) is not a file under a directory the daemon allows (--allow-path)",
                                    details: ["param": .string(param), "path": .string(path)])
        let allowed = configuration.allowedPaths.compactMap(realPath)
        guard let resolved = realPath(path),
              allowed.contains(where: { resolved == $0 || resolved.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") })
        else { throw refused }
        do {
            return try RegularFile.read(resolved, limit: configuration.maxMessageBytes)
        } catch {
            throw ProtocolError(.pathNotAllowed,
                                "\(param): \(path) is not a readable regular file of at most \(configuration.maxMessageBytes) bytes",
                                details: ["param": .string(param), "path": .string(path)])
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Decodes a checked payload (on a worker thread).
    public static func decode(_ payload: ImagePayload, maxPixels: Int) throws(ProtocolError) -> RGBAImage {
        do {
            switch payload.encoding {
            case .png: return try PNGCodec.decode(payload.bytes, maxPixels: maxPixels)
            case .rgba8(let width, let height):
                return try RGBAImage(width: width, height: height, pixels: [UInt8](payload.bytes))
            }
        } catch {
            throw ProtocolError(.imageDecodeFailed, "\(payload.param): \(error)", details: ["param": .string(payload.param)])
        }
    }

    /// Encodes a result image for a reply frame and its reference.
    public static func encode(_ image: RGBAImage, as output: OutputEncoding, frame: Int) throws(ProtocolError) -> (Data, JSONValue) {
        switch output {
        case .png:
            do {
                let data = try PNGCodec.encode(image, fast: true)
                return (data, ["frame": JSONValue(frame), "encoding": "png", "width": JSONValue(image.width),
                               "height": JSONValue(image.height)])
            } catch {
                throw ProtocolError(.internalError, "encoding the result failed: \(error)")
            }
        case .rgba8:
            return (Data(image.pixels), ImageReference.frame(index: frame, encoding: .rgba8(width: image.width, height: image.height)).json)
        }
    }
}
