// PaintsDaemon/RuntimeDirectory: where the default socket lives, and the lock that keeps a second daemon off it.
import Foundation
import Glibc
import PaintsProtocol

/// The directory of an ipc socket. What the daemon creates is private (0700); a directory that already exists keeps
/// its mode, since it may be shared (`/tmp`, a sticky 1777 folder): the socket file itself is made 0600 after binding.
public enum RuntimeDirectory {
    /// Creates the missing parts of `directory`, each with mode 0700, and leaves existing ones as they are.
    /// - Returns: the directories created, outermost first.
    @discardableResult
    public static func prepare(_ directory: String) throws(DaemonError) -> [String] {
        var missing: [String] = []
        var path = (directory as NSString).standardizingPath
        var info = stat()
        while !path.isEmpty, path != "/", stat(path, &info) != 0 {
            guard errno == ENOENT else { throw .setup("cannot stat \(path): errno \(errno)") }
            missing.insert(path, at: 0)
            path = (path as NSString).deletingLastPathComponent
        }
        guard stat(path.isEmpty ? "/" : path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw .setup("\(path) is not a directory")
        }
        // In a directory another user owns, or one anyone may write to without the sticky bit, someone else could
        // replace the socket file with their own.
        if missing.isEmpty {
            guard info.st_uid == getuid() || info.st_uid == 0 else {
                throw .setup("\(path) belongs to another user (uid \(info.st_uid))")
            }
            guard info.st_mode & 0o022 == 0 || info.st_mode & S_ISVTX != 0 else {
                throw .setup("\(path) is writable by other users and not sticky: they could replace the socket")
            }
        }
        for created in missing {
            // mkdir's mode is masked by the umask; chmod makes it exactly 0700 (this directory is ours alone).
            guard mkdir(created, 0o700) == 0 || errno == EEXIST else { throw .setup("cannot create \(created): errno \(errno)") }
            guard stat(created, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_uid == getuid() else {
                throw .setup("\(created) appeared while it was being created, and is not this user's directory")
            }
            guard chmod(created, 0o700) == 0 else { throw .setup("cannot chmod 0700 \(created): errno \(errno)") }
        }
        return missing
    }

    /// Makes a bound ipc socket connectable by its owner only (connecting needs write permission on the file).
    public static func restrictSocket(_ path: String) throws(DaemonError) {
        guard chmod(path, 0o600) == 0 else { throw .setup("cannot chmod 0600 \(path): errno \(errno)") }
    }
}

/// An exclusive lock beside an ipc socket file, so a second daemon fails loudly instead of stealing the socket.
/// `@unchecked Sendable`: it is made on the starting thread and handed once to the socket thread, the only one that
/// releases it.
public final class EndpointLock: @unchecked Sendable {
    public let path: String
    private var descriptor: Int32

    /// Takes the lock at `socketPath + ".lock"`; throws `alreadyRunning` when another process holds it.
    public init(socketPath: String) throws(DaemonError) {
        path = socketPath + ".lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw .setup("cannot open lock file \(path): errno \(errno)") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(descriptor, &buffer, buffer.count, 0)
            let holder = count > 0 ? String(decoding: buffer.prefix(count), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(descriptor)
            throw .alreadyRunning(endpoint: "ipc://" + socketPath, pid: holder)
        }
        let pid = "\(getpid())\n"
        _ = ftruncate(descriptor, 0)
        _ = pid.withCString { pwrite(descriptor, $0, strlen($0), 0) }
    }

    /// Releases the lock. The file stays: unlinking it would let two later daemons lock two different files.
    public func release() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}

/// Failures to set a daemon up or run it.
public enum DaemonError: Error, Sendable, CustomStringConvertible {
    case setup(String)
    case alreadyRunning(endpoint: String, pid: String)
    case endpointRefused(String, reason: String)
    case bind(endpoint: String, message: String)

    public var description: String {
        switch self {
        case .setup(let m): m
        case .alreadyRunning(let endpoint, let pid):
            "another paintsd (pid \(pid)) is already listening on \(endpoint); stop it first or pass --runtime-dir/--listen"
        case .endpointRefused(let e, let reason): "refusing endpoint \(e): \(reason)"
        case .bind(let endpoint, let message): "cannot listen on \(endpoint): \(message)"
        }
    }
}

/// An endpoint the daemon may listen on, checked and written the way libzmq is to bind it.
public struct ListenEndpoint: Sendable, Equatable {
    /// What is passed to zmq_bind: `localhost` is written `127.0.0.1` (libzmq would take it for an interface name).
    public var bindAddress: String
    /// The socket file of an ipc endpoint.
    public var socketPath: String?
    /// A `[::1]` endpoint: the socket needs ZMQ_IPV6.
    public var ipv6: Bool
}

/// Checks of endpoints before binding and after.
///
/// The tcp grammar accepted is exactly `tcp://HOST:PORT` with HOST a dotted IPv4 address in 127.0.0.0/8, `localhost`
/// or `[::1]`, and PORT a number in 1...65535 or `*`. Anything else is refused, since libzmq reads more into an
/// address than it shows: `tcp://127.0.0.1:1;0.0.0.0:25570` is its "source;address" form and binds every interface,
/// and a host that is not an address is looked up as an interface name.
public enum EndpointPolicy {
    public static let loopbackOnly = "tcp is allowed only as tcp://HOST:PORT on loopback (127.0.0.0/8, localhost, [::1])"

    public static func validate(_ endpoint: String) throws(DaemonError) -> ListenEndpoint {
        if endpoint.hasPrefix("ipc://") {
            let path = String(endpoint.dropFirst(6))
            guard path.hasPrefix("/") else { throw .endpointRefused(endpoint, reason: "ipc paths must be absolute") }
            guard path.utf8.count <= 107 else { throw .endpointRefused(endpoint, reason: "ipc paths are limited to 107 bytes") }
            guard !path.utf8.contains(0) else { throw .endpointRefused(endpoint, reason: "ipc paths cannot hold NUL bytes") }
            return ListenEndpoint(bindAddress: endpoint, socketPath: path, ipv6: false)
        }
        if endpoint.hasPrefix("tcp://") {
            guard let (host, port) = loopback(endpoint) else { throw .endpointRefused(endpoint, reason: loopbackOnly) }
            return ListenEndpoint(bindAddress: "tcp://\(host == "localhost" ? "127.0.0.1" : host):\(port)", socketPath: nil,
                                  ipv6: host == "[::1]")
        }
        throw .endpointRefused(endpoint, reason: "only ipc:// and loopback tcp:// endpoints are supported")
    }

    /// Checks the endpoint libzmq reports it bound (ZMQ_LAST_ENDPOINT) against the same rule, so that no reading of
    /// an address by libzmq that differs from ours can leave a socket open beyond this machine.
    public static func checkBound(_ bound: String, requested: String) throws(DaemonError) {
        if bound.hasPrefix("ipc://") && requested.hasPrefix("ipc://") { return }
        guard let (_, port) = loopback(bound), port != "*" else {
            throw .endpointRefused(requested, reason: "libzmq bound \(bound), which is not loopback")
        }
    }

    /// Host and port of a loopback tcp endpoint, or nil.
    static func loopback(_ endpoint: String) -> (host: String, port: String)? {
        guard endpoint.hasPrefix("tcp://") else { return nil }
        let rest = endpoint.dropFirst(6)
        guard let colon = rest.lastIndex(of: ":") else { return nil }
        let host = String(rest[..<colon]), port = String(rest[rest.index(after: colon)...])
        let portOK = port == "*" || (port.count <= 5 && port.allSatisfy(\.isASCII) && port.allSatisfy(\.isNumber)
                                     && (1...65535).contains(Int(port) ?? 0))
        guard portOK else { return nil }
        if host == "localhost" || host == "[::1]" { return (host, port) }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets[0] == "127",
              octets.allSatisfy({ o in (1...3).contains(o.count) && o.allSatisfy { $0.isASCII && $0.isNumber }
                                       && Int(o)! <= 255 && (o.count == 1 || o.first != "0") })
        else { return nil }
        return (host, port)
    }
}
