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
        guard let id, !id.isEmpty, id.count <= maxIdLength else {
            throw fail(.invalidRequest, "\"id\" must be a non-empty string of at most \(maxIdLength) characters")
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
        return Request(id: id, method: method, params: params, stream: stream, onDisconnect: policy, frames: frames)
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
