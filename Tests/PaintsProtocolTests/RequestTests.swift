// Tests of request parsing, params reading and reply framing.
import Foundation
import PaintsProtocol
import Testing

@Suite struct RequestTests {
    func parse(_ text: String, frames: [Data] = []) -> Result<Request, RequestParseError> {
        do throws(RequestParseError) {
            return .success(try Request.parse(frames: [Data(text.utf8)] + frames))
        } catch {
            return .failure(error)
        }
    }

    func code(_ text: String) -> ErrorCode? {
        if case .failure(let e) = parse(text) { return e.error.code }
        return nil
    }

    @Test func parsesAFullHeader() throws {
        let r = try parse(#"{"protocol":1,"id":"a1","method":"colorize","params":{"seed":3},"stream":true,"on_disconnect":"keep"}"#).get()
        #expect(r.id == "a1")
        #expect(r.method == .colorize)
        #expect(r.stream)
        #expect(r.onDisconnect == .keep)
        #expect(r.params["seed"] == 3)
    }

    @Test func rejectsMalformedHeadersWithTheRightCode() {
        #expect(code("not json") == .parseError)
        #expect(code("[1,2]") == .invalidRequest)
        #expect(code(#"{"method":"ping"}"#) == .invalidRequest)
        #expect(code(#"{"id":"x"}"#) == .invalidRequest)
        #expect(code(#"{"id":"x","method":"paint"}"#) == .unknownMethod)
        #expect(code(#"{"id":"x","method":"ping","protocol":2}"#) == .invalidRequest)
        #expect(code(#"{"id":"x","method":"ping","params":[]}"#) == .invalidRequest)
        #expect(code(#"{"id":"x","method":"ping","stream":"yes"}"#) == .invalidRequest)
        #expect(code(#"{"id":"x","method":"ping","extra":1}"#) == .invalidRequest)
        #expect(code(#"{"id":7,"method":"ping"}"#) == .invalidRequest)
    }

    @Test func keepsTheIdOfARequestThatFailsLater() {
        guard case .failure(let e) = parse(#"{"id":"keep-me","method":"nope"}"#) else { Issue.record("parsed"); return }
        #expect(e.id == "keep-me")
    }

    @Test func colorizeParamsNameTheOffendingMember() {
        func error(_ params: [String: JSONValue]) -> ProtocolError? {
            do { _ = try ColorizeParams(params) } catch { return error }
            return nil
        }
        #expect(error([:])?.details["param"] == "sketch")
        let sketch: JSONValue = ["frame": 1, "encoding": "png"]
        #expect(error(["sketch": sketch, "seed": "abc"])?.details["param"] == "seed")
        #expect(error(["sketch": sketch, "seed": -1])?.code == .invalidParams)
        #expect(error(["sketch": sketch, "colour": "red"])?.details["param"] == "colour")
        #expect(error(["sketch": ["frame": 0, "encoding": "png"]])?.code == .invalidParams)
        #expect(error(["sketch": ["frame": 1, "encoding": "jpeg"]])?.code == .invalidParams)
        #expect(error(["sketch": ["frame": 1, "encoding": "rgba8"]])?.code == .invalidParams)
        #expect(error(["sketch": ["base64": "@@@", "encoding": "png"]])?.code == .imageDecodeFailed)
        #expect(error(["sketch": ["path": "relative.png"]])?.code == .invalidParams)
        #expect(error(["sketch": sketch, "options": 3])?.details["param"] == "options")
        #expect(error(["sketch": sketch, "seed": 12, "prompt": "a cat"]) == nil)
    }

    @Test func undoParamsTakeStepsOrCountOrTheReferenceKeyframes() throws {
        let image: JSONValue = ["frame": 1, "encoding": "png"]
        #expect(try UndoPreviewParams(["image": image, "steps": [0, 999, 500]]).steps == [0, 999, 500])
        #expect(try UndoPreviewParams(["image": image, "count": 3]).steps == [333, 666, 999])
        #expect(try UndoPreviewParams(["image": image]).steps == [400, 600, 800, 900, 950, 999])
        #expect(throws: ProtocolError.self) { try UndoPreviewParams(["image": image, "steps": [1000]]) }
        #expect(throws: ProtocolError.self) { try UndoPreviewParams(["image": image, "steps": [1], "count": 1]) }
        #expect(throws: ProtocolError.self) { try UndoPreviewParams(["image": image, "steps": []]) }
    }

    @Test func tagParamsCheckThresholdsAndExclusions() throws {
        let image: JSONValue = ["frame": 1, "encoding": "png"]
        let defaults = try TagParams(["image": image])
        #expect(defaults.threshold == 0.35 && defaults.characterThreshold == 0.85 && defaults.exclude.isEmpty)
        #expect(try TagParams(["image": image, "exclude": ["monochrome"], "threshold": 0.5]).exclude == ["monochrome"])
        #expect(throws: ProtocolError.self) { try TagParams(["image": image, "threshold": 1.5]) }
        #expect(throws: ProtocolError.self) { try TagParams(["image": image, "exclude": [3]]) }
        #expect(throws: ProtocolError.self) { try TagParams(["threshold": 0.5]) }
    }

    @Test func repliesRoundTripThroughFrames() throws {
        let reply = Reply.result(id: "r", job: "j1", ["image": ["frame": 1, "encoding": "png"]], payloads: [Data([1, 2, 3])])
        let back = try Reply.decode(frames: reply.encodedFrames())
        #expect(back.id == "r")
        #expect(back.job == "j1")
        #expect(back.type == .result)
        #expect(back.payload(frame: 1) == Data([1, 2, 3]))
        #expect(back.payload(frame: 2) == nil)
        let error = Reply.error(id: nil, ProtocolError(.queueFull, "full", details: ["capacity": 2]))
        let decoded = try Reply.decode(frames: error.encodedFrames())
        #expect(decoded.protocolError?.code == .queueFull)
        #expect(decoded.protocolError?.details["capacity"] == 2)
        #expect(decoded.id == nil)
    }

    @Test func serializesJSONThatParsesBackEqual() throws {
        let value: JSONValue = ["a": [1, 2.5, "x\n\"y\"", true, nil], "b": ["c": -3], "u": "é\u{1}"]
        #expect(try JSONValue.parse(value.serialized()) == value)
        #expect(JSONValue(3.0).serializedString() == "3")
    }
}
