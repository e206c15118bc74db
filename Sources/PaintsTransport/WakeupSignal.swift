// PaintsTransport/WakeupSignal: a self-pipe that other threads use to wake a thread blocked in ZMQPoller.
import Glibc

/// A non-blocking pipe: `signal()` from any thread makes `descriptor` readable; `reset()` on the polling thread drains it.
public final class WakeupSignal: @unchecked Sendable {
    // Sendable because pipe reads and writes are atomic system calls on descriptors that never change.
    public let descriptor: Int32
    private let writeEnd: Int32

    public init() {
        var fds: [Int32] = [-1, -1]
        let rc = pipe(&fds)
        precondition(rc == 0, "pipe failed: errno \(errno)")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        descriptor = fds[0]
        writeEnd = fds[1]
    }

    deinit {
        Glibc.close(descriptor)
        Glibc.close(writeEnd)
    }

    public func signal() {
        var one: UInt8 = 1
        _ = write(writeEnd, &one, 1)  // a full pipe already means "wake up"
    }

    public func reset() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(descriptor, &buffer, buffer.count) > 0 {}
    }
}
