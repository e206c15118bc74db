// Request limits: header size, string param lengths, and payload frames that no image reference names.
import Foundation
import PaintsProtocol
import Testing

@Suite struct RequestLimitTests {
    func parse(_ header: JSONValue, frames: [Data] = []) -> Result<Request, RequestParseError> {
        parse(header.serialized(), frames: frames)
    }

    func parse(_ header: Data, frames: [Data] = []) -> Result<Request, RequestParseError> {
        do throws(RequestParseError) { return .success(try Request.parse(frames: [header] + frames)) } catch { return .failure(error) }
    }

    func failure(_ result: Result<Request, RequestParseError>) -> RequestParseError? {
        if case .failure(let e) = result { return e }
        return nil
    }

    @Test func statedLimits() {
        #expect(RequestLimits.headerBytes == 1_048_576)
        #expect(RequestLimits.jsonDepth == 64)
        #expect(RequestLimits.promptBytes == 65_536)
        #expect(RequestLimits.pathBytes == 4096)
        #expect(RequestLimits.stringBytes == 1024)
        #expect(RequestLimits.json["max_header_bytes"] == 1_048_576)
        #expect(RequestLimits.json["max_prompt_bytes"] == 65_536)
    }

    @Test func headerOverOneMebibyteIsRefusedBeforeParsing() throws {
        // Exactly at the limit: parsed (and then refused for its content, not its size).
        let prefix = #"{"id":"big","method":"ping","pad":""#
        let suffix = #""}"#
        let atLimit = Data((prefix + String(repeating: "x", count: 1_048_576 - prefix.utf8.count - suffix.utf8.count) + suffix).utf8)
        #expect(atLimit.count == 1_048_576)
        let parsed = failure(parse(atLimit))
        #expect(parsed?.error.code == .invalidRequest)  // unknown header member "pad": the header was read
        #expect(parsed?.id == "big")
        // One byte more: refused from its size alone; it is not JSON either, and that is not looked at.
        var over = atLimit
        over.append(contentsOf: Array("x".utf8))
        let refused = try #require(failure(parse(over)))
        #expect(refused.error.code == .messageTooLarge)
        #expect(refused.error.details["max_bytes"] == 1_048_576)
        #expect(refused.error.details["bytes"] == 1_048_577)
        #expect(refused.error.details["frame"] == 0)
        let garbage = try #require(failure(parse(Data(repeating: 0x7B, count: 2_000_000))))
        #expect(garbage.error.code == .messageTooLarge)
    }

    @Test func strictJSONReachesRequestParsing() throws {
        let trailing = try #require(failure(parse(Data(#"{"id":"a","method":"ping",}"#.utf8))))
        #expect(trailing.error.code == .parseError)
        let duplicate = try #require(failure(parse(Data(#"{"id":"a","method":"ping","method":"shutdown"}"#.utf8))))
        #expect(duplicate.error.code == .parseError)
        #expect(duplicate.error.message.contains(#"duplicate key "method""#))
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let nested = try #require(failure(parse(Data((#"{"id":"a","method":"ping","params":{"x":"# + deep + "}}").utf8))))
        #expect(nested.error.code == .parseError)
    }

    func colorize(_ extra: [String: JSONValue]) -> ProtocolError? {
        var params: [String: JSONValue] = ["sketch": ["frame": 1, "encoding": "png"]]
        params.merge(extra) { _, new in new }
        do { _ = try ColorizeParams(params) } catch { return error }
        return nil
    }

    @Test func longStringParamsAreRefusedNamingTheParamAndLimit() throws {
        #expect(colorize(["prompt": .string(String(repeating: "a", count: 65_536))]) == nil)
        let prompt = try #require(colorize(["prompt": .string(String(repeating: "a", count: 65_537))]))
        #expect(prompt.code == .invalidParams)
        #expect(prompt.details["param"] == "prompt")
        #expect(prompt.details["max_bytes"] == 65_536)
        #expect(prompt.details["bytes"] == 65_537)
        #expect(prompt.message.contains("prompt") && prompt.message.contains("65536"))
        // Bytes, not characters: 30,000 three-byte characters are 90,000 bytes.
        let wide = try #require(colorize(["negative_prompt": .string(String(repeating: "\u{3042}", count: 30_000))]))
        #expect(wide.details["param"] == "negative_prompt")
        #expect(wide.details["bytes"] == 90_000)
        #expect(colorize(["engine": .string(String(repeating: "e", count: 1024))])?.details["param"] != "engine")
        let engine = try #require(colorize(["engine": .string(String(repeating: "e", count: 1025))]))
        #expect(engine.details["param"] == "engine")
        #expect(engine.details["max_bytes"] == 1024)
        // Engine options read through ParamReader get the same limits, under their full name.
        var options = ParamReader(["model": .string(String(repeating: "m", count: 2000))], path: "options.")
        var error: ProtocolError?
        do { _ = try options.string("model") } catch let e { error = e }
        #expect(error?.details["param"] == "options.model")
        var undoOptions = ParamReader(["negative_prompt": .string(String(repeating: "n", count: 10_000))], path: "options.")
        #expect((try? undoOptions.string("negative_prompt"))?.count == 10_000)
        // Job ids and list items.
        do { _ = try JobParams(["job": .string(String(repeating: "j", count: 1025))]) } catch let e { error = e }
        #expect(error?.details["param"] == "job")
        do {
            _ = try TagParams(["image": ["frame": 1, "encoding": "png"], "exclude": ["ok", .string(String(repeating: "t", count: 1025))]])
            error = nil
        } catch let e { error = e }
        #expect(error?.details["param"] == "exclude")
    }

    @Test func longPathsAndIdsAreRefused() throws {
        let longPath = "/" + String(repeating: "p", count: 4096)
        var error: ProtocolError?
        do { _ = try ImageReference.parse(["path": .string(longPath)], param: "sketch") } catch let e { error = e }
        #expect(error?.code == .invalidParams)
        #expect(error?.details["max_bytes"] == 4096)
        #expect(try ImageReference.parse(["path": .string(String(longPath.dropLast()))], param: "sketch") == .path(String(longPath.dropLast())))
        // An id of 256 eight-byte characters (a thumb with a skin tone) is within 256 characters but over 1 KiB.
        let id = failure(parse(["id": .string(String(repeating: "\u{1F44D}\u{1F3FD}", count: 256)), "method": "ping"]))
        #expect(id?.error.code == .invalidRequest)
        #expect(failure(parse(["id": .string(String(repeating: "\u{1F600}", count: 256)), "method": "ping"])) == nil)
        if case .failure(let e) = parse(["id": .string(String(repeating: "\u{E9}", count: 256)), "method": "ping"]) {
            Issue.record("a 512-byte id was refused: \(e.error)")
        }
    }

    @Test func framesWithoutImagesAreRefused() throws {
        let png = Data([0x89, 0x50, 0x4E, 0x47])
        for method in ["ping", "hello", "engines.list", "jobs.list"] {
            let e = try #require(failure(parse(["id": "f", "method": .string(method)], frames: [png])), "\(method)")
            #expect(e.error.code == .invalidParams)
            #expect(e.error.details["frame"] == 1)
            #expect(e.error.message.contains("frame 1"))
            #expect(e.id == "f")
        }
        let status = try #require(failure(parse(["id": "f", "method": "jobs.status", "params": ["job": "j1"]], frames: [png, png])))
        #expect(status.error.details["frame"] == 1)
        // Job methods are checked by the daemon after their params are validated, not by parse.
        let request = try parse(["id": "c", "method": "colorize", "params": ["sketch": ["frame": 1, "encoding": "png"]]],
                                frames: [png, png]).get()
        var error: ProtocolError?
        do { try request.checkFramesReferenced() } catch let e { error = e }
        #expect(error?.code == .invalidParams)
        #expect(error?.details["frame"] == 2)
        #expect(error?.message.contains("frame 2") == true)
    }

    @Test func framesNamedByImageReferencesPass() throws {
        let png = Data([0x89, 0x50, 0x4E, 0x47])
        func check(_ method: String, _ params: JSONValue, frames: Int) -> ProtocolError? {
            do {
                let request = try parse(["id": "c", "method": .string(method), "params": params],
                                        frames: Array(repeating: png, count: frames)).get()
                try request.checkFramesReferenced()
                return nil
            } catch let e as RequestParseError {
                return e.error
            } catch {
                return error as? ProtocolError
            }
        }
        let f1: JSONValue = ["frame": 1, "encoding": "png"], f2: JSONValue = ["frame": 2, "encoding": "png"]
        let f3: JSONValue = ["frame": 3, "encoding": "png"]
        #expect(check("colorize", ["sketch": f1, "hints": f2, "reference": f3], frames: 3) == nil)
        #expect(check("colorize", ["sketch": f2, "hints": f1], frames: 2) == nil)
        #expect(check("colorize", ["sketch": f1, "hints": f1], frames: 1) == nil)
        #expect(check("colorize", ["sketch": f1, "reference": f3], frames: 3)?.details["frame"] == 2)
        #expect(check("colorize", ["sketch": ["base64": "iVBORw==", "encoding": "png"]], frames: 1)?.details["frame"] == 1)
        #expect(check("colorize", ["sketch": ["base64": "iVBORw==", "encoding": "png"]], frames: 0) == nil)
        for method in ["undo.preview", "undo.sequence", "tag"] {
            #expect(check(method, ["image": f1], frames: 1) == nil, "\(method)")
            #expect(check(method, ["image": f1], frames: 2)?.details["frame"] == 2, "\(method)")
            #expect(check(method, ["image": f2], frames: 2)?.details["frame"] == 1, "\(method)")
        }
        #expect(check("ping", .object([:]), frames: 0) == nil)
    }
}
