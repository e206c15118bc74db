// PaintsTransport/ZMQSocket: one libzmq socket, owned by one thread, sending and receiving multipart messages.
import CZeroMQ
import Foundation

/// A multipart message with the metadata the daemon needs about its sender.
public struct ZMQMessage: Sendable {
    public var frames: [Data]
    /// The file descriptor of the connection the message came in on (libzmq's ZMQ_SRCFD), or -1.
    public var sourceDescriptor: Int32
    /// The peer's socket type from the ZMTP handshake ("DEALER", "REQ", ...), when known.
    public var peerSocketType: String?
}

/// Socket types this project uses.
public enum ZMQSocketType: Int32, Sendable {
    case pair = 0
    case req = 3
    case rep = 4
    case dealer = 5
    case router = 6
}

/// A libzmq socket. Not thread-safe (libzmq sockets are not): create, use and close it on one thread.
/// The raw pointer never leaves this type.
public final class ZMQSocket {
    private var handle: UnsafeMutableRawPointer?
    /// Kept so the context outlives its sockets.
    private let context: ZMQContext

    public init(context: ZMQContext, type: ZMQSocketType) throws(ZMQError) {
        guard let h = zmq_socket(context.handle, type.rawValue) else { throw ZMQError("zmq_socket") }
        self.context = context
        handle = h
        try setOption(ZMQ_LINGER, 0)
    }

    deinit { close() }

    public func close() {
        if let h = handle { zmq_close(h) }
        handle = nil
    }

    private func live(_ call: String) throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let h = handle else { throw ZMQError(call, errno: ENOTSOCK) }
        return h
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        guard zmq_bind(try live("zmq_bind"), endpoint) == 0 else { throw ZMQError("zmq_bind(\(endpoint))") }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        guard zmq_connect(try live("zmq_connect"), endpoint) == 0 else { throw ZMQError("zmq_connect(\(endpoint))") }
    }

    public func setOption(_ option: Int32, _ value: Int32) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(try live("zmq_setsockopt"), option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, int64 value: Int64) throws(ZMQError) {
        var v = value
        guard zmq_setsockopt(try live("zmq_setsockopt"), option, &v, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError("zmq_setsockopt(\(option))")
        }
    }

    public func setOption(_ option: Int32, bytes: Data) throws(ZMQError) {
        let h = try live("zmq_setsockopt")
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(h, option, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw ZMQError("zmq_setsockopt(\(option))") }
    }

    /// The endpoint actually bound last (resolves `tcp://127.0.0.1:*`).
    public var lastEndpoint: String? {
        guard let h = handle else { return nil }
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        guard zmq_getsockopt(h, ZMQ_LAST_ENDPOINT, &buffer, &size) == 0 else { return nil }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Options that make a socket report a vanished peer: ZMTP heartbeats every `interval` ms, dropped after `timeout` ms.
    public func enableHeartbeats(intervalMilliseconds interval: Int32, timeoutMilliseconds timeout: Int32) throws(ZMQError) {
        try setOption(ZMQ_HEARTBEAT_IVL, interval)
        try setOption(ZMQ_HEARTBEAT_TIMEOUT, timeout)
        try setOption(ZMQ_HEARTBEAT_TTL, timeout)
    }

    /// Sends all frames as one atomic multipart message.
    public func send(_ frames: [Data], dontWait: Bool = false) throws(ZMQError) {
        let h = try live("zmq_send")
        let frames = frames.isEmpty ? [Data()] : frames
        for (i, frame) in frames.enumerated() {
            var flags: Int32 = i < frames.count - 1 ? ZMQ_SNDMORE : 0
            if dontWait { flags |= ZMQ_DONTWAIT }
            var rc: Int32 = 0
            repeat {
                rc = frame.withUnsafeBytes { zmq_send(h, $0.baseAddress, $0.count, flags) }
            } while rc < 0 && zmq_errno() == EINTR
            if rc < 0 { throw ZMQError("zmq_send") }
        }
    }

    /// Receives one multipart message; with `dontWait`, returns nil when none is ready.
    public func receive(dontWait: Bool = false) throws(ZMQError) -> ZMQMessage? {
        let h = try live("zmq_msg_recv")
        var frames: [Data] = []
        var sourceDescriptor: Int32 = -1
        var peerType: String?
        while true {
            var msg = zmq_msg_t()
            zmq_msg_init(&msg)
            defer { zmq_msg_close(&msg) }
            var rc: Int32
            repeat {
                rc = zmq_msg_recv(&msg, h, dontWait && frames.isEmpty ? ZMQ_DONTWAIT : 0)
            } while rc < 0 && zmq_errno() == EINTR && !frames.isEmpty
            if rc < 0 {
                let error = ZMQError("zmq_msg_recv")
                if error.wouldBlock && frames.isEmpty { return nil }
                throw error
            }
            let size = zmq_msg_size(&msg)
            if let data = zmq_msg_data(&msg), size > 0 {
                frames.append(Data(bytes: data, count: size))
            } else {
                frames.append(Data())
            }
            // A ROUTER makes the routing-id frame itself, without metadata: read it from the peer's own frames.
            if sourceDescriptor < 0 { sourceDescriptor = zmq_msg_get(&msg, ZMQ_SRCFD) }
            if peerType == nil, let t = zmq_msg_gets(&msg, "Socket-Type") { peerType = String(cString: t) }
            if zmq_msg_more(&msg) == 0 { break }
        }
        return ZMQMessage(frames: frames, sourceDescriptor: sourceDescriptor, peerSocketType: peerType)
    }

    /// Starts libzmq's monitor for connection events and returns a PAIR socket that receives them.
    public func openMonitor(context: ZMQContext, endpoint: String) throws(ZMQError) -> ZMQMonitor {
        let events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECTED
        guard zmq_socket_monitor(try live("zmq_socket_monitor"), endpoint, events) == 0 else {
            throw ZMQError("zmq_socket_monitor")
        }
        let pair = try ZMQSocket(context: context, type: .pair)
        try pair.connect(endpoint)
        return ZMQMonitor(socket: pair)
    }

    /// For `ZMQPoller`: the handle to poll (nil once closed).
    var pollHandle: UnsafeMutableRawPointer? { handle }
}

/// Connection events of a monitored socket.
public final class ZMQMonitor {
    public enum Event: Sendable, Equatable {
        case accepted(descriptor: Int32)
        case connected(descriptor: Int32)
        case disconnected(descriptor: Int32)
        case other(code: UInt16)
    }

    public let socket: ZMQSocket

    init(socket: ZMQSocket) { self.socket = socket }

    /// Reads every pending event without blocking.
    public func drain() -> [Event] {
        var events: [Event] = []
        while let message = try? socket.receive(dontWait: true) {
            guard let first = message.frames.first, first.count >= 6 else { continue }
            let code = UInt16(first[first.startIndex]) | UInt16(first[first.startIndex + 1]) << 8
            var value: UInt32 = 0
            for i in 0..<4 { value |= UInt32(first[first.startIndex + 2 + i]) << (8 * UInt32(i)) }
            let fd = Int32(bitPattern: value)
            switch Int32(code) {
            case ZMQ_EVENT_ACCEPTED: events.append(.accepted(descriptor: fd))
            case ZMQ_EVENT_CONNECTED: events.append(.connected(descriptor: fd))
            case ZMQ_EVENT_DISCONNECTED: events.append(.disconnected(descriptor: fd))
            default: events.append(.other(code: code))
            }
        }
        return events
    }
}

/// libzmq option names used outside this module.
public enum ZMQOption {
    public static let routerMandatory = ZMQ_ROUTER_MANDATORY
    public static let linger = ZMQ_LINGER
    public static let maxMessageSize = ZMQ_MAXMSGSIZE
    public static let sendHighWaterMark = ZMQ_SNDHWM
    public static let receiveHighWaterMark = ZMQ_RCVHWM
    public static let receiveTimeout = ZMQ_RCVTIMEO
    /// Lets a tcp socket bind IPv6 addresses (`[::1]`); libzmq binds IPv4 only without it.
    public static let ipv6 = ZMQ_IPV6
    // Not offered: ZMQ_IMMEDIATE (on a client it drops unread replies when the daemon closes the connection).
}
