// PaintsProtocol/Reply: the messages a daemon sends back (accepted, progress, result, error) and their framing.
import Foundation

public enum ReplyType: String, Sendable {
    case accepted
    case progress
    case result
    case error
}

/// One reply: a JSON header (frame 0) and binary frames that the header references by index.
public struct Reply: Sendable {
    /// The request id this answers; `nil` only when the request's id could not be read.
    public var id: String?
    public var type: ReplyType
    /// The job this reply belongs to, for job methods.
    public var job: String?
    /// Members of the header besides protocol/id/type/job (`result`, `progress`, `error`, `queue_position`).
    public var body: [String: JSONValue]
    /// Payload frames; `frames[0]` is message frame 1.
    public var payloads: [Data]

    public init(id: String?, type: ReplyType, job: String? = nil, body: [String: JSONValue] = [:], payloads: [Data] = []) {
        self.id = id
        self.type = type
        self.job = job
        self.body = body
        self.payloads = payloads
    }

    public static func error(id: String?, job: String? = nil, _ error: ProtocolError) -> Reply {
        Reply(id: id, type: .error, job: job, body: ["error": error.json])
    }

    public static func result(id: String, job: String? = nil, _ result: JSONValue, payloads: [Data] = []) -> Reply {
        Reply(id: id, type: .result, job: job, body: ["result": result], payloads: payloads)
    }

    public var header: JSONValue {
        var h = body
        h["protocol"] = JSONValue(protocolVersion)
        h["id"] = id.map(JSONValue.string) ?? .null
        h["type"] = .string(type.rawValue)
        if let job { h["job"] = .string(job) }
        return .object(h)
    }

    public func encodedFrames() -> [Data] { [header.serialized()] + payloads }

    /// Reads a reply from frames (clients); throws `invalid_request` when the header is not a reply.
    public static func decode(frames: [Data]) throws(ProtocolError) -> Reply {
        guard let first = frames.first else { throw ProtocolError(.invalidRequest, "empty reply") }
        let header = try JSONValue.parse(first)
        guard case .object(var members) = header, let typeName = members["type"]?.stringValue,
              let type = ReplyType(rawValue: typeName)
        else { throw ProtocolError(.invalidRequest, "reply header has no valid \"type\"") }
        let id = members["id"]?.stringValue
        let job = members["job"]?.stringValue
        for key in ["protocol", "id", "type", "job"] { members[key] = nil }
        return Reply(id: id, type: type, job: job, body: members, payloads: Array(frames.dropFirst()))
    }

    /// The error of an `error` reply.
    public var protocolError: ProtocolError? {
        guard type == .error, let e = body["error"] else { return nil }
        return ProtocolError(json: e)
    }

    /// The payload that a `{"frame": n}` reference in this reply names.
    public func payload(frame index: Int) -> Data? {
        index >= 1 && index <= payloads.count ? payloads[index - 1] : nil
    }
}

/// The `progress` member of a progress event.
public struct ProgressReport: Sendable, Equatable {
    public var stage: String
    public var step: Int
    public var steps: Int
    /// Overall completion of the job in 0...1.
    public var fraction: Double
    /// Estimated seconds left, when known.
    public var etaSeconds: Double?
    public var elapsedSeconds: Double

    public init(stage: String, step: Int, steps: Int, fraction: Double, etaSeconds: Double?, elapsedSeconds: Double) {
        self.stage = stage
        self.step = step
        self.steps = steps
        self.fraction = fraction
        self.etaSeconds = etaSeconds
        self.elapsedSeconds = elapsedSeconds
    }

    public var json: [String: JSONValue] {
        [
            "stage": .string(stage), "step": JSONValue(step), "steps": JSONValue(steps), "fraction": JSONValue(fraction),
            "eta_s": JSONValue(optional: etaSeconds), "elapsed_s": JSONValue(elapsedSeconds),
        ]
    }

    public init?(json: JSONValue) {
        guard let stage = json["stage"]?.stringValue, let step = json["step"]?.intValue, let steps = json["steps"]?.intValue,
              let fraction = json["fraction"]?.doubleValue
        else { return nil }
        self.init(stage: stage, step: step, steps: steps, fraction: fraction, etaSeconds: json["eta_s"]?.doubleValue,
                  elapsedSeconds: json["elapsed_s"]?.doubleValue ?? 0)
    }
}
