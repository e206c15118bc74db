// PaintsProtocol/ProtocolError: the wire error codes and the one error type that every module reports to clients.

/// Error codes that appear in `error` replies. The raw value is what goes on the wire.
public enum ErrorCode: String, Sendable, CaseIterable, Codable {
    /// Frame 0 is not valid UTF-8 JSON.
    case parseError = "parse_error"
    /// JSON that is not a request: not an object, missing or mistyped `id`/`method`, wrong protocol version, bad framing.
    case invalidRequest = "invalid_request"
    case unknownMethod = "unknown_method"
    /// A parameter is missing, of the wrong type or out of range.
    case invalidParams = "invalid_params"
    /// An image reference points at a frame that does not exist.
    case frameOutOfRange = "frame_out_of_range"
    /// An image's bytes could not be decoded (corrupt PNG, raw frame of the wrong size, bad base64).
    case imageDecodeFailed = "image_decode_failed"
    /// An image exceeds the daemon's pixel limit (checked from the header, before decoding).
    case imageTooLarge = "image_too_large"
    /// Images that must agree in size do not.
    case imageSizeMismatch = "image_size_mismatch"
    /// A `path` image reference outside the directories allowed with `--allow-path`, or not readable.
    case pathNotAllowed = "path_not_allowed"
    /// The whole message exceeds the daemon's message size limit.
    case messageTooLarge = "message_too_large"
    case unsupportedEngine = "unsupported_engine"
    case modelNotFound = "model_not_found"
    case queueFull = "queue_full"
    case jobNotFound = "job_not_found"
    /// `jobs.result` on a job that has not finished yet.
    case jobNotFinished = "job_not_finished"
    case cancelled
    /// The daemon is shutting down and accepts no new jobs.
    case shuttingDown = "shutting_down"
    case resourceExhausted = "resource_exhausted"
    case internalError = "internal"
}

/// An error that can be sent to a client: a code, a human-readable message and structured details.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    public var message: String
    public var details: [String: JSONValue]

    public init(_ code: ErrorCode, _ message: String, details: [String: JSONValue] = [:]) {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String { "\(code.rawValue): \(message)" }

    /// The `error` member of an error reply.
    public var json: JSONValue {
        ["code": .string(code.rawValue), "message": .string(message), "details": .object(details)]
    }

    /// Reads an `error` member back (clients).
    public init?(json: JSONValue) {
        guard let codeText = json["code"]?.stringValue, let message = json["message"]?.stringValue else { return nil }
        self.init(ErrorCode(rawValue: codeText) ?? .internalError, message, details: json["details"]?.objectValue ?? [:])
    }
}
