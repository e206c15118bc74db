// PaintsDaemon/RuntimeDirectory: where the default socket lives, and the lock that keeps a second daemon off it.
import Foundation
import Glibc
import PaintsProtocol

/// The runtime directory of the default socket (see `DefaultEndpoint`), kept at mode 0700.
public enum RuntimeDirectory {
    /// Creates `directory` (and parents) and makes it 0700; refuses one owned by another user.
    public static func prepare(_ directory: String) throws(DaemonError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .setup("cannot create \(directory): \(error.localizedDescription)")
        }
        var info = stat()
        guard stat(directory, &info) == 0 else { throw .setup("cannot stat \(directory): errno \(errno)") }
        guard info.st_uid == getuid() else { throw .setup("\(directory) belongs to another user (uid \(info.st_uid))") }
        guard chmod(directory, 0o700) == 0 else { throw .setup("cannot chmod 0700 \(directory): errno \(errno)") }
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

/// Checks of endpoints before binding.
public enum EndpointPolicy {
    /// Accepts `ipc://` paths and `tcp://` on loopback addresses only; returns the ipc socket path when there is one.
    public static func validate(_ endpoint: String) throws(DaemonError) -> String? {
        if endpoint.hasPrefix("ipc://") {
            let path = String(endpoint.dropFirst(6))
            guard path.hasPrefix("/") else { throw .endpointRefused(endpoint, reason: "ipc paths must be absolute") }
            guard path.utf8.count <= 107 else { throw .endpointRefused(endpoint, reason: "ipc paths are limited to 107 bytes") }
            return path
        }
        if endpoint.hasPrefix("tcp://") {
            let rest = endpoint.dropFirst(6)
            let host: Substring
            if rest.hasPrefix("[") {
                host = rest.prefix(while: { $0 != "]" }).dropFirst()
            } else {
                host = rest.prefix(while: { $0 != ":" })
            }
            guard host == "localhost" || host.hasPrefix("127.") || host == "::1" else {
                throw .endpointRefused(endpoint, reason: "tcp is allowed only on loopback (127.0.0.0/8, localhost, [::1])")
            }
            return nil
        }
        throw .endpointRefused(endpoint, reason: "only ipc:// and loopback tcp:// endpoints are supported")
    }
}
