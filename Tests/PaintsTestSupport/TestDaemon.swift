// PaintsTestSupport/TestDaemon: a real daemon on a temporary ipc endpoint, and paths to the repository's files.
import Foundation
import Logging
import PaintsClient
import PaintsDaemon
import PaintsEngine
import PaintsProtocol
import PaintsRaster

/// A daemon with the built-in engines, listening on a fresh ipc socket under /tmp; stopped by `stop()`.
public final class TestDaemon: Sendable {
    public let server: PaintsServer
    public let directory: String
    public var endpoint: String { server.endpoints[0] }

    public init(engines: EngineRegistry = BuiltinEngines.registry(), _ configure: (inout DaemonConfiguration) -> Void = { _ in }) throws {
        directory = try TemporaryDirectory.make(prefix: "paintsd-test")
        var configuration = DaemonConfiguration(endpoints: ["ipc://\(directory)/paintsd.sock"])
        configure(&configuration)
        var logger = Logger(label: "paintsd-test")
        logger.logLevel = .warning
        server = PaintsServer(configuration: configuration, engines: engines, logger: logger)
        try server.start()
    }

    public func client() throws -> PaintsClient { try PaintsClient(endpoint: endpoint) }

    public func stop(mode: ShutdownParams.Mode = .cancel) {
        server.requestShutdown(mode: mode)
        server.wait()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

public enum TemporaryDirectory {
    /// A new private directory under /tmp (ipc paths must stay under 107 bytes).
    public static func make(prefix: String) throws -> String {
        let path = "/tmp/\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Files of the repository, found from this source file's location.
public enum Repository {
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static func path(_ relative: String) -> String { root + "/" + relative }

    public static func data(_ relative: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path(relative)))
    }

    public static func image(_ relative: String) throws -> RGBAImage {
        try PNGCodec.read(path: path(relative))
    }

    /// The paintsd and paintsctl executables built beside the test bundle.
    public static func executable(_ name: String) -> String {
        var url = Bundle.main.bundleURL
        let candidates = [url.appendingPathComponent(name).path]
        url.deleteLastPathComponent()
        for candidate in candidates + [url.appendingPathComponent(name).path, root + "/.build/debug/" + name]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return root + "/.build/debug/" + name
    }
}

extension PaintsClient {
    /// Sends a request built from params and frames; waits for the final reply and returns it with the events before it.
    public func collect(_ method: PaintsProtocol.Method, _ params: [String: JSONValue], frames: [Data] = [], stream: Bool = false,
                        onDisconnect: DisconnectPolicy = .cancel, timeout: TimeInterval = 300) throws -> (events: [Reply], final: Reply) {
        let request = Request(id: makeId(), method: method, params: params, stream: stream, onDisconnect: onDisconnect,
                              frames: [Data()] + frames)
        try send(request)
        var events: [Reply] = []
        while true {
            guard let reply = try receive(for: request.id, timeout: timeout) else {
                throw ClientError.timeout(seconds: timeout, method: method.rawValue)
            }
            if reply.type == .result || reply.type == .error { return (events, reply) }
            events.append(reply)
        }
    }
}
