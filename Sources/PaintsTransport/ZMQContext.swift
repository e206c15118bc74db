// PaintsTransport/ZMQContext: the process's libzmq context.
import CZeroMQ

/// A libzmq context. libzmq documents contexts as thread-safe, which is why this one type may be shared across
/// threads (`@unchecked Sendable`); sockets made from it may not.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() {
        // zmq_ctx_new fails only when the process is out of memory or file descriptors.
        guard let h = zmq_ctx_new() else { preconditionFailure("zmq_ctx_new failed: \(ZMQError("zmq_ctx_new"))") }
        handle = h
    }

    /// Blocks until every socket of the context is closed, then frees it.
    deinit { zmq_ctx_term(handle) }

    /// libzmq's version as "major.minor.patch".
    public static var libraryVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
