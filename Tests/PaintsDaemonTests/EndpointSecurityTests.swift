// Where the daemon listens and what it lets clients read: loopback only, whatever libzmq makes of an address; shared
// directories keep their mode; a refused path tells nothing about what exists (issue 10).
import Foundation
import Glibc
import PaintsClient
import PaintsDaemon
import PaintsEngine
import PaintsProtocol
import PaintsTestSupport
import Testing

@Suite struct EndpointSecurityTests {
    static let hasIPv6Loopback = (try? String(contentsOfFile: "/proc/net/if_inet6", encoding: .utf8))?
        .contains("00000000000000000000000000000001") ?? false

    @Test(arguments: [
        "tcp://127.0.0.1:1;0.0.0.0:25570",  // libzmq's "source;address": would bind every interface
        "tcp://0.0.0.0:25570", "tcp://*:25570", "tcp://eth0:25570", "tcp://lo:25570", "tcp://127.0.0.1",
        "tcp://127.0.0.1:0", "tcp://127.0.0.1:65536", "tcp://127.0.0.1:0x10", "tcp://127.0.0.01:25570",
        "tcp://127.1:25570", "tcp://127.0.0.1.5:25570", "tcp://[::1]:25570;0.0.0.0:1", "tcp://[::]:25570",
        "tcp://localhost.example.com:25570", "tcp://127.0.0.1: 25570", "ipc://relative.sock", "inproc://x", "udp://127.0.0.1:1",
    ])
    func refusesEveryEndpointThatIsNotPlainLoopback(_ endpoint: String) {
        #expect(throws: DaemonError.self) { try EndpointPolicy.validate(endpoint) }
        #expect(throws: DaemonError.self) {
            let server = PaintsServer(configuration: DaemonConfiguration(endpoints: [endpoint]), engines: BuiltinEngines.registry())
            try server.start()
        }
    }

    @Test(arguments: ["tcp://127.0.0.1:*", "tcp://localhost:*", "tcp://127.8.9.10:*"])
    func loopbackEndpointsBindAndAnswer(_ endpoint: String) throws {
        let daemon = try TestDaemon { $0.endpoints = [endpoint] }
        defer { daemon.stop() }
        #expect(daemon.endpoint.hasPrefix("tcp://127."))
        let client = try daemon.client()
        #expect(try client.call(.ping, timeout: 60).result["pong"] == true)
    }

    @Test(.enabled(if: hasIPv6Loopback)) func ipv6LoopbackBindsAndAnswers() throws {
        let daemon = try TestDaemon { $0.endpoints = ["tcp://[::1]:*"] }
        defer { daemon.stop() }
        #expect(daemon.endpoint.hasPrefix("tcp://[::1]:"))
        #expect(try daemon.client().call(.ping, timeout: 60).result["pong"] == true)
    }

    func mode(_ path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : 0
    }

    @Test func aSharedDirectoryKeepsItsModeAndTheSocketIsPrivate() throws {
        let shared = try TemporaryDirectory.make(prefix: "paintsd-shared")
        defer { try? FileManager.default.removeItem(atPath: shared) }
        #expect(chmod(shared, 0o1777) == 0)
        let daemon = try TestDaemon { $0.endpoints = ["ipc://\(shared)/p.sock"] }
        #expect(mode(shared) == 0o1777)
        #expect(mode(shared + "/p.sock") == 0o600)
        #expect(try daemon.client().call(.ping, timeout: 60).result["pong"] == true)
        daemon.stop()
    }

    @Test func directoriesTheDaemonCreatesArePrivate() throws {
        let base = try TemporaryDirectory.make(prefix: "paintsd-base")
        defer { try? FileManager.default.removeItem(atPath: base) }
        #expect(chmod(base, 0o755) == 0)
        let daemon = try TestDaemon { $0.endpoints = ["ipc://\(base)/a/b/p.sock"] }
        defer { daemon.stop() }
        #expect(mode(base) == 0o755)
        #expect(mode(base + "/a") == 0o700 && mode(base + "/a/b") == 0o700)
    }

    @Test func aRefusedPathSaysTheSameWhetherItExistsOrNot() throws {
        let allowed = try TemporaryDirectory.make(prefix: "paintsd-allowed")
        defer { try? FileManager.default.removeItem(atPath: allowed) }
        let daemon = try TestDaemon { $0.allowedPaths = [allowed] }
        defer { daemon.stop() }
        let client = try daemon.client()
        func refusal(_ path: String) throws -> ProtocolError? {
            let reply = try client.collect(.colorize, ["sketch": ["path": .string(path)]]).final
            return reply.protocolError
        }
        let existing = try #require(try refusal("/etc/passwd"))
        let missing = try #require(try refusal("/etc/no-such-file-\(getpid())"))
        let missingInside = try #require(try refusal(allowed + "/missing.png"))
        #expect(existing.code == .pathNotAllowed && missing.code == .pathNotAllowed && missingInside.code == .pathNotAllowed)
        // The same words but for the path itself.
        #expect(existing.message.replacingOccurrences(of: "/etc/passwd", with: "P")
                == missing.message.replacingOccurrences(of: "/etc/no-such-file-\(getpid())", with: "P"))
        // A named pipe under an allowed directory is refused without blocking the daemon.
        #expect(mkfifo(allowed + "/pipe.png", 0o600) == 0)
        #expect(try refusal(allowed + "/pipe.png")?.code == .pathNotAllowed)
        #expect(try client.call(.ping, timeout: 60).result["pong"] == true)
    }
}

extension EndpointSecurityTests {
    @Test func aDirectoryOthersCouldSwapTheSocketInIsRefused() throws {
        let open = try TemporaryDirectory.make(prefix: "paintsd-open")
        defer { try? FileManager.default.removeItem(atPath: open) }
        #expect(chmod(open, 0o777) == 0)
        #expect(throws: DaemonError.self) { try TestDaemon { $0.endpoints = ["ipc://\(open)/p.sock"] } }
        #expect(mode(open) == 0o777)
    }
}
