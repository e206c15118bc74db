// PaintsClient: a Swift client of the paintsd protocol (a DEALER socket): send requests with frames, read events, cancel.
import Foundation
import PaintsProtocol
import PaintsTransport

/// Why a client call failed.
public enum ClientError: Error, CustomStringConvertible {
    /// Nothing listens at the endpoint.
    case noDaemon(endpoint: String)
    /// No reply within the timeout.
    case timeout(seconds: Double, method: String)
    case transport(ZMQError)
    /// The daemon answered with an error reply.
    case daemon(ProtocolError)
    /// The reply could not be read.
    case badReply(String)

    public var description: String {
        switch self {
        case .noDaemon(let endpoint):
            "no paintsd is listening at \(endpoint); start one with `paintsd` (or `swift run paintsd`)"
        case .timeout(let seconds, let method): "no reply to \(method) within \(seconds) s (is the daemon busy or stuck?)"
        case .transport(let error): "transport: \(error)"
        case .daemon(let error): "daemon error \(error.code.rawValue): \(error.message)"
        case .badReply(let m): "unreadable reply: \(m)"
        }
    }
}

/// A connection to a daemon. Not thread-safe: use it from one thread. Replies for other requests than the one being
/// waited on are kept until asked for, so several requests may be in flight at once.
public final class PaintsClient {
    public let endpoint: String
    private let context: ZMQContext
    private let socket: ZMQSocket
    private var pending: [Reply] = []
    private var counter = 0
    /// When the first request went out, while no reply has come back yet; whether the endpoint was probed since.
    private var silentSince: Date?
    private var heardFromDaemon = false
    private var probed = false
    /// How long a first reply may take before the endpoint is probed with a plain connect(2) (`EndpointProbe`): a
    /// daemon answers `accepted`, `hello` or `ping` in microseconds, so a silence this long is a dead socket or a busy
    /// daemon, and the probe tells them apart. Only slow first replies are probed: each probe is a connection the
    /// daemon accepts and sees closed.
    public static let probeAfter: TimeInterval = 0.5
    private let idPrefix = String(UInt32.random(in: 0...UInt32.max), radix: 36)

    /// Connects. libzmq connects lazily and retries for ever: an ipc endpoint whose socket file is missing fails here at
    /// once with `noDaemon`; one whose file a stopped daemon left behind, or a refused tcp port, fails with `noDaemon`
    /// when the first reply is `probeAfter` late (see `receiveFromSocket`).
    public init(endpoint: String, context: ZMQContext = ZMQContext()) throws(ClientError) {
        if endpoint.hasPrefix("ipc://"), !endpoint.hasPrefix("ipc://@"),
           !FileManager.default.fileExists(atPath: String(endpoint.dropFirst(6))) {
            throw .noDaemon(endpoint: endpoint)
        }
        self.endpoint = endpoint
        self.context = context
        do {
            socket = try ZMQSocket(context: context, type: .dealer)
            // No ZMQ_IMMEDIATE: with it, libzmq drops replies not yet read when the daemon closes the connection
            // (a shutdown reply, the last result).
            // IPv6 on: libzmq then reaches `tcp://[::1]:PORT` as well as IPv4 addresses.
            try socket.setOption(ZMQOption.ipv6, 1)
            try socket.connect(endpoint)
        } catch {
            throw .transport(error)
        }
    }

    public func close() { socket.close() }

    /// A fresh request id.
    public func makeId() -> String {
        counter += 1
        return "\(idPrefix)-\(counter)"
    }

    /// Sends a request without waiting.
    public func send(_ request: Request) throws(ClientError) {
        if silentSince == nil { silentSince = Date() }
        do { try socket.send(request.encodedFrames()) } catch { throw .transport(error) }
    }

    /// Sends raw frames (tests of malformed input).
    public func sendRaw(_ frames: [Data]) throws(ClientError) {
        if silentSince == nil { silentSince = Date() }
        do { try socket.send(frames) } catch { throw .transport(error) }
    }

    /// The next reply from the socket (any request), or nil after `timeout` seconds.
    public func receiveAny(timeout: TimeInterval) throws(ClientError) -> Reply? {
        if !pending.isEmpty { return pending.removeFirst() }
        return try receiveFromSocket(timeout: timeout)
    }

    private func receiveFromSocket(timeout: TimeInterval) throws(ClientError) -> Reply? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return nil }
            var wait = left
            if !heardFromDaemon, !probed, let silentSince {
                let probeIn = silentSince.addingTimeInterval(Self.probeAfter).timeIntervalSinceNow
                if probeIn <= 0 {
                    probed = true
                    if case .nothingListens = EndpointProbe.check(endpoint) { throw .noDaemon(endpoint: endpoint) }
                    continue
                }
                wait = min(wait, probeIn)
            }
            do {
                let ready = try ZMQPoller.waitReadable([.socket(socket)], timeoutMilliseconds: Int(wait * 1000) + 1)
                guard ready[0], let message = try socket.receive(dontWait: true) else { continue }
                heardFromDaemon = true
                var frames = message.frames
                if frames.first?.isEmpty == true && frames.count > 1 { frames.removeFirst() }
                do { return try Reply.decode(frames: frames) } catch { throw ClientError.badReply(error.description) }
            } catch let error as ZMQError {
                throw .transport(error)
            } catch let error as ClientError {
                throw error
            } catch {
                throw .badReply("\(error)")
            }
        }
    }

    /// The next reply for request `id`, or nil after `timeout` seconds; other replies are kept.
    public func receive(for id: String, timeout: TimeInterval) throws(ClientError) -> Reply? {
        if let index = pending.firstIndex(where: { $0.id == id }) { return pending.remove(at: index) }
        let deadline = Date().addingTimeInterval(timeout)
        while deadline.timeIntervalSinceNow > 0 {
            guard let reply = try receiveFromSocket(timeout: deadline.timeIntervalSinceNow) else { return nil }
            if reply.id == id { return reply }
            pending.append(reply)
        }
        return nil
    }

    /// Sends a request and waits for its final reply (`result`), passing `accepted` and `progress` events to `onEvent`.
    /// - Throws: `ClientError.daemon` for an error reply, `timeout` when the daemon is silent for `timeout` seconds.
    public func call(_ request: Request, timeout: TimeInterval = 30, onEvent: (Reply) -> Void = { _ in }) throws(ClientError) -> Reply {
        try send(request)
        while true {
            guard let reply = try receive(for: request.id, timeout: timeout) else {
                throw .timeout(seconds: timeout, method: request.method.rawValue)
            }
            switch reply.type {
            case .result: return reply
            case .error: throw .daemon(reply.protocolError ?? ProtocolError(.internalError, "error reply without an error"))
            case .accepted, .progress: onEvent(reply)
            }
        }
    }

    /// Calls a method with params and no frames.
    public func call(_ method: Method, _ params: [String: JSONValue] = [:], timeout: TimeInterval = 30) throws(ClientError) -> Reply {
        try call(Request(id: makeId(), method: method, params: params), timeout: timeout)
    }

    /// `jobs.cancel`.
    @discardableResult
    public func cancel(job: String, timeout: TimeInterval = 10) throws(ClientError) -> Reply {
        try call(.jobsCancel, ["job": .string(job)], timeout: timeout)
    }
}

extension Reply {
    /// The `result` member, or an empty object.
    public var result: JSONValue { body["result"] ?? [:] }

    /// The bytes of the image a result references at `reference` (`{"frame": n, ...}`).
    public func imageData(_ reference: JSONValue?) -> Data? {
        guard let index = reference?["frame"]?.intValue else { return nil }
        return payload(frame: index)
    }
}
