// PaintsTransport/ZMQPoller: waits on several sockets and plain file descriptors at once (zmq_poll).
import CZeroMQ

/// Something to wait on: a socket or a raw descriptor (an eventfd, a pipe).
public enum PollTarget {
    case socket(ZMQSocket)
    case descriptor(Int32)
}

public enum ZMQPoller {
    /// Waits until any target is readable or `timeoutMilliseconds` pass (-1: forever).
    /// Returns, for each target in order, whether it is readable. An interrupted wait returns all false.
    public static func waitReadable(_ targets: [PollTarget], timeoutMilliseconds: Int) throws(ZMQError) -> [Bool] {
        var items = targets.map { target -> zmq_pollitem_t in
            switch target {
            case .socket(let s): zmq_pollitem_t(socket: s.pollHandle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
            case .descriptor(let fd): zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0)
            }
        }
        let rc = zmq_poll(&items, Int32(items.count), timeoutMilliseconds)
        if rc < 0 {
            let error = ZMQError("zmq_poll")
            if error.interrupted { return Array(repeating: false, count: items.count) }
            throw error
        }
        return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
    }
}
