// PaintsProtocol/Request: a request as it arrives in frames (JSON header in frame 0, binary payloads after), validated.
import Foundation

/// The protocol version this code speaks.
public let protocolVersion = 1

/// The methods a daemon answers.
public enum Method: String, Sendable, CaseIterable {
    case hello
    case ping
    case enginesList = "engines.list"
    case colorize
    case undoPreview = "undo.preview"
    case undoSequence = "undo.sequence"
    case tag
    case jobsList = "jobs.list"
    case jobsStatus = "jobs.status"
    case jobsCancel = "jobs.cancel"
    case jobsResult = "jobs.result"
    case shutdown

    /// Methods that create a job (answered with `accepted`, optional `progress`, then `result` or `error`).
    public var createsJob: Bool { [.colorize, .undoPreview, .undoSequence, .tag].contains(self) }

    /// The params members that hold image references; empty for methods that take no images.
    public var imageParams: [String] {
        switch self {
        case .colorize: ColorizeParams.imageParams
        case .undoPreview, .undoSequence: UndoPreviewParams.imageParams
        case .tag: TagParams.imageParams
        default: []
        }
    }
}

/// Size limits on requests, enforced by `Request.parse`, `ParamReader` and `ImageReference.parse`; `hello` reports them.
public enum RequestLimits {
    /// Largest frame 0 (the JSON header), checked before it is parsed. Inline `base64` images count against it: send
    /// bigger images as binary frames.
    public static let headerBytes = 1 << 20
    /// Deepest nesting of arrays and objects in frame 0.
    public static let jsonDepth = JSONValue.maxNestingDepth
    /// Longest `prompt` and `negative_prompt` (also as engine options), in UTF-8 bytes.
    public static let promptBytes = 64 << 10
    /// Longest image `path`, in UTF-8 bytes.
    public static let pathBytes = 4 << 10
    /// Longest other string param (job ids, engine and model names, sampler names, tags...), in UTF-8 bytes.
    public static let stringBytes = 1 << 10

    /// The longest string accepted for the param named `key` (the last component of its name), in UTF-8 bytes.
    public static func maxStringBytes(param key: String) -> Int {
        switch key {
        case "prompt", "negative_prompt": promptBytes
        case "path": pathBytes
        default: stringBytes
        }
    }

    /// The limits as `hello` reports them.
    public static var json: [String: JSONValue] {
        ["max_header_bytes": JSONValue(headerBytes), "max_json_depth": JSONValue(jsonDepth),
         "max_prompt_bytes": JSONValue(promptBytes), "max_path_bytes": JSONValue(pathBytes),
         "max_string_bytes": JSONValue(stringBytes)]
    }
}

/// What the daemon does with a client's unfinished jobs when the client disconnects.
public enum DisconnectPolicy: String, Sendable {
    /// Cancel queued and running jobs (the default: a killed GIMP plug-in wants nothing more).
    case cancel
    /// Keep running; the result waits for `jobs.result` (a client that may crash and come back).
    case keep
}

/// A parsed, validated request header together with its payload frames.
public struct Request: Sendable {
    public var id: String
    public var method: Method
    public var params: [String: JSONValue]
    /// Whether the client wants `progress` events.
    public var stream: Bool
    public var onDisconnect: DisconnectPolicy
    /// All frames of the message; frame 0 is the header, so `frames[n]` is what `{"frame": n}` names.
    public var frames: [Data]

    public init(id: String, method: Method, params: [String: JSONValue] = [:], stream: Bool = false,
                onDisconnect: DisconnectPolicy = .cancel, frames: [Data] = []) {
        self.id = id
        self.method = method
        self.params = params
        self.stream = stream
        self.onDisconnect = onDisconnect
        self.frames = frames
    }

    public static let maxIdLength = 256

    /// Validates a message. On failure, the error carries the request id when one could be read (`idHint`).
    public static func parse(frames: [Data]) throws(RequestParseError) -> Request {
        guard let first = frames.first else {
            throw RequestParseError(id: nil, error: ProtocolError(.invalidRequest, "empty message"))
        }
        guard first.count <= RequestLimits.headerBytes else {
            let message = "frame 0 (the JSON header) has \(first.count) bytes, over the limit of \(RequestLimits.headerBytes)"
                + "; send images as binary frames"
            throw RequestParseError(id: nil, error: ProtocolError(
                .messageTooLarge, message,
                details: ["frame": 0, "bytes": JSONValue(first.count), "max_bytes": JSONValue(RequestLimits.headerBytes)]))
        }
        let header: JSONValue
        do { header = try JSONValue.parse(first) } catch { throw RequestParseError(id: nil, error: error) }
        guard case .object(let members) = header else {
            throw RequestParseError(
                id: nil, error: ProtocolError(.invalidRequest, "the header must be a JSON object, got \(header.typeName)"))
        }
        let id = members["id"]?.stringValue
        func fail(_ code: ErrorCode, _ message: String, _ details: [String: JSONValue] = [:]) -> RequestParseError {
            RequestParseError(id: id, error: ProtocolError(code, message, details: details))
        }
        guard let id, !id.isEmpty, id.count <= maxIdLength, id.utf8.count <= RequestLimits.stringBytes else {
            throw fail(.invalidRequest,
                       "\"id\" must be a non-empty string of at most \(maxIdLength) characters (\(RequestLimits.stringBytes) bytes)")
        }
        if let version = members["protocol"] {
            guard version.intValue == protocolVersion else {
                throw fail(.invalidRequest, "unsupported protocol \(version.serializedString()); this daemon speaks \(protocolVersion)",
                           ["supported": .number(Double(protocolVersion))])
            }
        }
        guard let methodName = members["method"]?.stringValue else {
            throw fail(.invalidRequest, "\"method\" must be a string")
        }
        guard let method = Method(rawValue: methodName) else {
            throw fail(.unknownMethod, "unknown method \"\(methodName)\"",
                       ["method": .string(methodName), "methods": .array(Method.allCases.map { .string($0.rawValue) })])
        }
        var params: [String: JSONValue] = [:]
        if let p = members["params"] {
            guard case .object(let o) = p else { throw fail(.invalidRequest, "\"params\" must be an object") }
            params = o
        }
        var stream = false
        if let s = members["stream"] {
            guard let b = s.boolValue else { throw fail(.invalidRequest, "\"stream\" must be a boolean") }
            stream = b
        }
        var policy = DisconnectPolicy.cancel
        if let d = members["on_disconnect"] {
            guard let text = d.stringValue, let p = DisconnectPolicy(rawValue: text) else {
                throw fail(.invalidRequest, "\"on_disconnect\" must be \"cancel\" or \"keep\"")
            }
            policy = p
        }
        let known: Set<String> = ["protocol", "id", "method", "params", "stream", "on_disconnect"]
        if let extra = members.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail(.invalidRequest, "unknown header member \"\(extra)\"", ["member": .string(extra)])
        }
        let request = Request(id: id, method: method, params: params, stream: stream, onDisconnect: policy, frames: frames)
        if method.imageParams.isEmpty {
            do { try request.checkFramesReferenced() } catch { throw RequestParseError(id: id, error: error) }
        }
        return request
    }

    /// Refuses payload frames (frames after frame 0) that no image reference in the params names: a frame sent for
    /// nothing is a client bug (a forgotten `hints`, an off-by-one index). Methods without images may have no payload
    /// frames at all (`parse` checks those); for job methods the daemon calls this once their params are validated, so
    /// that each image param is a well-formed reference naming an existing frame.
    public func checkFramesReferenced() throws(ProtocolError) {
        guard frames.count > 1 else { return }
        let names = method.imageParams
        let named = Set(names.compactMap { params[$0]?["frame"]?.intValue })
        guard let unused = (1..<frames.count).first(where: { !named.contains($0) }) else { return }
        let why = names.isEmpty
            ? "\(method.rawValue) takes no images"
            : "no image reference (\(names.map { "\"\($0)\"" }.joined(separator: ", "))) names it with {\"frame\": \(unused)}"
        throw ProtocolError(.invalidParams, "frame \(unused) is not used: \(why)",
                            details: ["frame": JSONValue(unused), "frames": JSONValue(frames.count)])
    }

    /// The header frame for this request (clients).
    public func headerJSON() -> JSONValue {
        var header: [String: JSONValue] = [
            "protocol": .number(Double(protocolVersion)), "id": .string(id), "method": .string(method.rawValue),
            "params": .object(params),
        ]
        if stream { header["stream"] = true }
        if onDisconnect != .cancel { header["on_disconnect"] = .string(onDisconnect.rawValue) }
        return .object(header)
    }

    /// The whole message, header first (clients).
    public func encodedFrames() -> [Data] {
        [headerJSON().serialized()] + frames.dropFirst()
    }
}

/// A request that failed validation, with the id to answer to when one was readable.
public struct RequestParseError: Error, Sendable {
    public var id: String?
    public var error: ProtocolError
}
