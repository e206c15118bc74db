// Every example message in Protocol/examples validates against its schema, and Swift reads it back.
import Foundation
import PaintsProtocol
import PaintsTestSupport
import Testing

@Suite struct ProtocolExampleTests {
    static let examples: [String] = {
        let dir = Repository.path("Protocol/examples")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".json") }.sorted()
    }()

    @Test func thereAreExamplesOfEveryMethodAndReplyType() {
        #expect(Self.examples.count >= 20)
        for method in Method.allCases {
            #expect(Self.examples.contains("request-\(method.rawValue).json"), "no request example for \(method.rawValue)")
        }
        for type in ["accepted", "progress", "result-colorize", "error-cancelled"] {
            #expect(Self.examples.contains("reply-\(type).json"))
        }
    }

    @Test(arguments: examples)
    func exampleValidates(_ name: String) throws {
        var validator = JSONSchemaValidator(directory: Repository.path("Protocol/schema"))
        let message = try JSONValue.parse(Repository.data("Protocol/examples/" + name))
        if name.hasPrefix("request-") {
            #expect(try validator.validate(message, against: "request.json") == [])
            // Swift parses it as a request, and its params as the method's params.
            let request = try Request.parse(frames: [message.serialized()])
            switch request.method {
            case .colorize: _ = try ColorizeParams(request.params)
            case .undoPreview, .undoSequence: _ = try UndoPreviewParams(request.params)
            case .tag: _ = try TagParams(request.params)
            case .jobsStatus, .jobsCancel, .jobsResult: _ = try JobParams(request.params)
            case .shutdown: _ = try ShutdownParams(request.params)
            default: try requireNoParams(request.params)
            }
        } else {
            #expect(try validator.validate(message, against: "reply.json") == [])
            let reply = try Reply.decode(frames: [message.serialized()])
            let parts = name.dropLast(5).split(separator: "-", maxSplits: 2).map(String.init)
            if parts.count == 3 && parts[1] == "result" {
                // reply-result-METHOD.json, or reply-result-METHOD-VARIANT.json (an engine's own result).
                let method = Method.allCases.map(\.rawValue).filter { parts[2] == $0 || parts[2].hasPrefix($0 + "-") }.max { $0.count < $1.count }
                #expect(method != nil, "\(name) names no method")
                #expect(try validator.validate(reply.body["result"] ?? .null, against: "results/\(method ?? parts[2]).json") == [])
            }
            if reply.type == .error { #expect(reply.protocolError != nil) }
        }
    }

    @Test func theValidatorRejectsBrokenMessages() throws {
        var validator = JSONSchemaValidator(directory: Repository.path("Protocol/schema"))
        let bad: [JSONValue] = [
            ["id": "x", "method": "colorize", "params": ["sketch": ["frame": 0, "encoding": "png"]]],
            ["id": "x", "method": "colorize", "params": [:]],
            ["id": "x", "method": "undo.preview", "params": ["image": ["frame": 1, "encoding": "png"], "steps": [1000]]],
            ["id": "x", "method": "fly"],
            ["id": "x", "method": "ping", "params": ["a": 1]],
        ]
        for message in bad {
            #expect(try !validator.validate(message, against: "request.json").isEmpty, "\(message.serializedString())")
        }
        let badReply: JSONValue = ["protocol": 1, "id": "x", "type": "error", "error": ["code": "oops", "message": "m", "details": [:]]]
        #expect(try !validator.validate(badReply, against: "reply.json").isEmpty)
    }

    @Test func everyErrorCodeIsInTheSchema() throws {
        var validator = JSONSchemaValidator(directory: Repository.path("Protocol/schema"))
        for code in ErrorCode.allCases {
            let reply = Reply.error(id: "x", ProtocolError(code, "m"))
            #expect(try validator.validate(reply.header, against: "reply.json") == [], "\(code)")
        }
    }
}
