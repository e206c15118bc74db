// PaintsProtocol/ImageReference: how a request names an image (a frame, inline base64, or an allowed file path).
import Foundation

/// Pixel encodings an image can travel in.
public enum ImageEncoding: Sendable, Equatable {
    case png
    /// Raw 8-bit RGBA, straight alpha, row-major, exactly width*height*4 bytes.
    case rgba8(width: Int, height: Int)

    public var name: String {
        switch self {
        case .png: "png"
        case .rgba8: "rgba8"
        }
    }
}

/// An image named in request params.
public enum ImageReference: Sendable, Equatable {
    /// Message frame `index` (1-based: frame 0 is the header).
    case frame(index: Int, encoding: ImageEncoding)
    /// Inline bytes, for clients that cannot send multipart messages.
    case base64(Data, encoding: ImageEncoding)
    /// A file on the daemon's machine, allowed only under the operator's `--allow-path` directories.
    case path(String)

    /// The largest width or height a raw reference may declare.
    public static let maxDimension = 1 << 16

    /// Parses the JSON form, reporting problems against `param` (the params member name).
    public static func parse(_ json: JSONValue, param: String) throws(ProtocolError) -> ImageReference {
        func bad(_ message: String) -> ProtocolError {
            ProtocolError(.invalidParams, "\(param): \(message)", details: ["param": .string(param)])
        }
        guard case .object(let members) = json else {
            throw bad("an image reference must be an object, got \(json.typeName)")
        }
        let encoding: ImageEncoding
        switch members["encoding"]?.stringValue ?? (members["path"] != nil ? "png" : nil) {
        case "png":
            encoding = .png
        case "rgba8":
            guard let w = members["width"]?.intValue, let h = members["height"]?.intValue,
                  (1...maxDimension).contains(w), (1...maxDimension).contains(h)
            else { throw bad("rgba8 needs integer \"width\" and \"height\" in 1...\(maxDimension)") }
            encoding = .rgba8(width: w, height: h)
        case let other?:
            throw bad("unknown encoding \"\(other)\" (expected \"png\" or \"rgba8\")")
        case nil:
            throw bad("\"encoding\" is required (\"png\" or \"rgba8\")")
        }
        let sources = ["frame", "base64", "path"].filter { members[$0] != nil }
        guard sources.count == 1 else {
            throw bad("exactly one of \"frame\", \"base64\" or \"path\" is required")
        }
        if let f = members["frame"] {
            guard let index = f.intValue, index >= 1 else { throw bad("\"frame\" must be an integer >= 1") }
            return .frame(index: index, encoding: encoding)
        }
        if let b = members["base64"] {
            guard let text = b.stringValue else { throw bad("\"base64\" must be a string") }
            guard let data = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
                throw ProtocolError(.imageDecodeFailed, "\(param): \"base64\" is not valid base64", details: ["param": .string(param)])
            }
            return .base64(data, encoding: encoding)
        }
        guard let p = members["path"]?.stringValue, p.hasPrefix("/") else { throw bad("\"path\" must be an absolute path") }
        guard p.utf8.count <= RequestLimits.pathBytes else {
            throw ProtocolError(.invalidParams, "\(param): \"path\" has \(p.utf8.count) bytes, over the limit of \(RequestLimits.pathBytes)",
                                details: ["param": .string(param), "max_bytes": JSONValue(RequestLimits.pathBytes),
                                          "bytes": JSONValue(p.utf8.count)])
        }
        guard encoding == .png else { throw bad("a \"path\" reference must be a PNG file") }
        return .path(p)
    }

    /// The JSON form (clients and replies).
    public var json: JSONValue {
        func withEncoding(_ base: [String: JSONValue], _ encoding: ImageEncoding) -> JSONValue {
            var o = base
            o["encoding"] = .string(encoding.name)
            if case .rgba8(let w, let h) = encoding {
                o["width"] = JSONValue(w)
                o["height"] = JSONValue(h)
            }
            return .object(o)
        }
        switch self {
        case .frame(let index, let encoding): return withEncoding(["frame": JSONValue(index)], encoding)
        case .base64(let data, let encoding): return withEncoding(["base64": .string(data.base64EncodedString())], encoding)
        case .path(let p): return ["path": .string(p), "encoding": "png"]
        }
    }
}
