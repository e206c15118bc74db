// PaintsClient/EndpointProbe: is anything listening at a local endpoint? libzmq connects lazily and retries for ever,
// so a socket file left behind by a crashed daemon (or a tcp port nobody holds) would look like a silent, busy daemon
// until the client's timeout. A plain connect(2) tells them apart at once: the kernel refuses a connection to a unix
// socket nobody listens on, and to a tcp port nobody holds, with ECONNREFUSED.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a plain connect(2) to an endpoint found.
public enum EndpointProbe: Equatable, Sendable {
    /// Something accepted the connection (a daemon, possibly busy: only a reply tells more).
    case listening
    /// Nothing listens: the socket file is missing, or left behind by a daemon that stopped, or the port is closed.
    case nothingListens(reason: String)
    /// The probe cannot tell (not a local endpoint, no answer in time, permission denied, ...): let libzmq try.
    case unknown

    /// Probes `endpoint` (`ipc://PATH`, `ipc://@ABSTRACT`, `tcp://HOST:PORT`). A refusal is asked again a few times
    /// over ~0.3 s, so a daemon caught between creating its socket file and listening on it is not taken for dead.
    public static func check(_ endpoint: String, attempts: Int = 3) -> EndpointProbe {
        var result = EndpointProbe.unknown
        for attempt in 0..<max(1, attempts) {
            if attempt > 0 { Thread.sleep(forTimeInterval: 0.1) }
            result = checkOnce(endpoint)
            guard case .nothingListens = result else { return result }
        }
        return result
    }

    static func checkOnce(_ endpoint: String) -> EndpointProbe {
        if endpoint.hasPrefix("ipc://") { return unixSocket(String(endpoint.dropFirst(6))) }
        if endpoint.hasPrefix("tcp://") { return tcp(String(endpoint.dropFirst(6))) }
        return .unknown
    }

    /// connect(2) on a unix socket path (`@name`: Linux's abstract namespace, as libzmq reads it).
    static func unixSocket(_ path: String) -> EndpointProbe {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let abstract = path.hasPrefix("@")
        var bytes = Array(path.utf8)
        if abstract { bytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return .unknown }  // libzmq refuses such a path itself
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .unknown }
        defer { close(fd) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        if rc == 0 { return .listening }
        switch errno {
        case EAGAIN, EINPROGRESS: return .listening  // a full backlog: someone listens but is slow to accept
        case ECONNREFUSED:
            return .nothingListens(reason: abstract ? "nothing listens on the abstract socket \(path)"
                                   : "\(path) is left from a daemon that is no longer running")
        case ENOENT: return .nothingListens(reason: "\(path) does not exist")
        default: return .unknown
        }
    }

    /// connect(2) to each address HOST resolves to; nothing listens only when every one refuses.
    static func tcp(_ address: String, timeoutMilliseconds: Int32 = 1000) -> EndpointProbe {
        // libzmq's `source;destination` form and wildcards are left to libzmq.
        guard !address.contains(";"), let colon = address.lastIndex(of: ":") else { return .unknown }
        var host = String(address[..<colon])
        let port = String(address[address.index(after: colon)...])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, host != "*", let portNumber = Int(port), (1...65535).contains(portNumber) else { return .unknown }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, port, &hints, &list) == 0, let first = list else { return .unknown }
        defer { freeaddrinfo(first) }
        var refusals = 0, tried = 0
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            next = info.pointee.ai_next
            tried += 1
            let fd = socket(info.pointee.ai_family,
                            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                            info.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var error: Int32 = 0
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return .listening }
            error = errno
            if error == EINPROGRESS {
                var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                guard poll(&descriptor, 1, timeoutMilliseconds) == 1 else { continue }  // no answer in time: cannot tell
                var length = socklen_t(MemoryLayout<Int32>.size)
                guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else { continue }
                if error == 0 { return .listening }
            }
            if error == ECONNREFUSED { refusals += 1 }
        }
        return tried > 0 && refusals == tried ? .nothingListens(reason: "nothing listens on \(host) port \(port)") : .unknown
    }
}
