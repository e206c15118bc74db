// PaintsTransport/ZMQContext: the process's libzmq context.
import CZeroMQ
import Synchronization

/// A libzmq context. libzmq documents contexts as thread-safe, which is why this one type may be shared across
/// threads (`@unchecked Sendable`); sockets made from it may not.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() {
        // zmq_ctx_new fails only when the process is out of memory or file descriptors.
        guard let h = zmq_ctx_new() else { preconditionFailure("zmq_ctx_new failed: \(ZMQError("zmq_ctx_new"))") }
        handle = h
    }

    private let terminated = Atomic<Bool>(false)

    /// Blocks until every socket of the context is closed and their queued messages are sent (or their linger time
    /// is over), then frees the context. Call it before the process exits, or last replies are lost. Idempotent.
    public func terminate() {
        guard terminated.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else { return }
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }

    deinit { terminate() }

    /// libzmq's version as "major.minor.patch".
    public static var libraryVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }
}
