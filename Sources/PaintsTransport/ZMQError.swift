// PaintsTransport/ZMQError: libzmq failures as a Swift error carrying the call and errno.
import CZeroMQ

/// A failed libzmq call.
public struct ZMQError: Error, Sendable, CustomStringConvertible {
    /// The libzmq function that failed.
    public var call: String
    public var errno: Int32
    public var message: String

    init(_ call: String, errno code: Int32 = zmq_errno()) {
        self.call = call
        self.errno = code
        self.message = String(cString: zmq_strerror(code))
    }

    public var description: String { "\(call): \(message) (errno \(errno))" }

    /// The socket would block (no message ready, or the peer's queue is full).
    public var wouldBlock: Bool { errno == EAGAIN }
    /// A ROUTER_MANDATORY send to a peer that is gone.
    public var hostUnreachable: Bool { errno == EHOSTUNREACH }
    /// The context was terminated.
    public var terminated: Bool { errno == ETERM }
    /// A blocking call was interrupted by a signal.
    public var interrupted: Bool { errno == EINTR }
}
