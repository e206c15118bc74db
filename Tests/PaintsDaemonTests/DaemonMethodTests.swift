// Every method against a real daemon over real ZeroMQ sockets, and what it sends checked against the schemas.
import Foundation
import PaintsClient
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

let png: ImageReference = .frame(index: 1, encoding: .png)

/// Sample files as request frames.
enum Samples {
    static func frame(_ name: String) throws -> Data { try Repository.data("Examples/art/\(name).png") }
    /// A picture large enough that an undo job with many frames runs for seconds in a debug build.
    static func bigPicture() throws -> Data {
        let image = try Repository.image("Examples/art/umbrella-colored.png")
        return try PNGCodec.encode(image.resized(width: 1024, height: 1024 * image.height / image.width))
    }
    static func longUndoParams() -> [String: JSONValue] { ["image": png.json, "count": 40] }
}

/// The error reply a call ended with, or nil when it succeeded or failed otherwise.
func daemonError(_ body: () throws -> Reply) -> ProtocolError? {
    do {
        _ = try body()
        return nil
    } catch let error as ClientError {
        if case .daemon(let e) = error { return e }
        return nil
    } catch {
        return nil
    }
}

@Suite(.serialized) struct DaemonMethodTests {
    @Test func helloPingAndEnginesList() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let hello = try client.call(.hello)
        ReplySchema.check(hello, method: .hello)
        #expect(hello.result["protocol"] == 1)
        let engines = hello.result["engines"]?.arrayValue ?? []
        #expect(engines.contains { $0["name"] == "builtin" && $0["status"] == "ready" })
        #expect(hello.result["defaults"]?["colorize"] == "builtin")
        #expect(hello.result["limits"]?["max_pixels"]?.intValue == daemon.server.configuration.maxPixels)
        #expect((hello.result["memory"]?["rss_bytes"]?.intValue ?? 0) > 1 << 20)
        let ping = try client.call(.ping)
        ReplySchema.check(ping, method: .ping)
        #expect(ping.result["pong"] == true)
        let list = try client.call(.enginesList)
        ReplySchema.check(list, method: .enginesList)
        #expect(list.result["engines"]?.arrayValue?.count == engines.count)
    }

    @Test func colorizeStreamsProgressThenTheResult() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let params = ColorizeParams(sketch: png, hints: .frame(index: 2, encoding: .png), seed: 5,
                                    options: ["composite_lines": true])
        let (events, final) = try client.collect(.colorize, params.json,
                                                 frames: [try Samples.frame("umbrella-lineart"), try Samples.frame("umbrella-hints")],
                                                 stream: true)
        #expect(events.first?.type == .accepted)
        let progress = events.filter { $0.type == .progress }
        #expect(progress.count >= 3)
        let fractions = progress.compactMap { $0.body["progress"]?["fraction"]?.doubleValue }
        #expect(fractions == fractions.sorted())
        for event in events { ReplySchema.check(event) }
        #expect(final.type == .result)
        ReplySchema.check(final, method: .colorize)
        #expect(final.result["seed"] == 5)
        #expect(final.job == events.first?.job)
        let image = try PNGCodec.decode(try #require(final.imageData(final.result["image"])))
        let sketch = try Repository.image("Examples/art/umbrella-lineart.png")
        #expect(image.width == sketch.width && image.height == sketch.height)
    }

    @Test func withoutStreamThereIsNoProgress() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let (events, final) = try client.collect(.colorize, ["sketch": png.json], frames: [try Samples.frame("blocks-lineart")])
        #expect(events.map(\.type) == [.accepted])
        #expect(final.type == .result)
    }

    @Test func undoPreviewReturnsFramesInTheOrderAsked() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let picture = try Repository.image("Examples/art/blocks-colored.png")
        let (events, final) = try client.collect(.undoPreview, ["image": png.json, "steps": [999, 0, 500]],
                                                 frames: [try Samples.frame("blocks-colored")], stream: true)
        ReplySchema.check(final, method: .undoPreview)
        let frames = final.result["frames"]?.arrayValue ?? []
        #expect(frames.compactMap { $0["step"]?.intValue } == [999, 0, 500])
        let images = try frames.map { try PNGCodec.decode(try #require(final.imageData($0["image"]))) }
        #expect(images[1] == picture)
        #expect(images.allSatisfy { $0.width == picture.width && $0.height == picture.height })
        #expect(images[0] != picture && images[2] != picture)
        // Streaming clients get a preview image with frame progress.
        let previews = events.filter { $0.body["preview"] != nil }
        #expect(previews.count == 3)
        for event in previews { #expect(event.imageData(event.body["preview"]) != nil) }
    }

    @Test func rawRGBAInAndOut() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let sketch = try Repository.image("Examples/art/blocks-lineart.png")
        let reference = ImageReference.frame(index: 1, encoding: .rgba8(width: sketch.width, height: sketch.height))
        let (_, final) = try client.collect(.colorize, ["sketch": reference.json, "output": "rgba8"],
                                            frames: [Data(sketch.pixels)])
        ReplySchema.check(final, method: .colorize)
        #expect(final.result["image"]?["encoding"] == "rgba8")
        #expect(final.imageData(final.result["image"])?.count == sketch.pixelCount * 4)
    }

    @Test func base64AndAllowedPathReferences() throws {
        let daemon = try TestDaemon { $0.allowedPaths = [Repository.path("Examples/art")] }
        defer { daemon.stop() }
        let client = try daemon.client()
        let inline = ImageReference.base64(try Samples.frame("blocks-lineart"), encoding: .png)
        let byPath = ImageReference.path(Repository.path("Examples/art/blocks-hints.png"))
        let (_, final) = try client.collect(.colorize, ["sketch": inline.json, "hints": byPath.json])
        #expect(final.type == .result)
        let escape = ImageReference.path(Repository.path("Examples/art/../../Package.swift"))
        let (_, refused) = try client.collect(.colorize, ["sketch": escape.json])
        #expect(refused.protocolError?.code == .pathNotAllowed)
    }

    @Test func jobsListStatusAndResultAgain() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let client = try daemon.client()
        let (events, final) = try client.collect(.colorize, ["sketch": png.json], frames: [try Samples.frame("blocks-lineart")])
        let job = try #require(events.first?.job)
        let list = try client.call(.jobsList)
        ReplySchema.check(list, method: .jobsList)
        #expect(list.result["jobs"]?.arrayValue?.contains { $0["job"]?.stringValue == job } == true)
        #expect(list.result["queue"]?["completed"] == 1)
        let status = try client.call(.jobsStatus, ["job": .string(job)])
        ReplySchema.check(status, method: .jobsStatus)
        #expect(status.result["state"] == "done")
        let again = try client.call(.jobsResult, ["job": .string(job)])
        ReplySchema.check(again, method: .jobsResult)
        #expect(again.payloads == final.payloads)
        #expect(again.result["image"] == final.result["image"])
        #expect(daemonError { try client.call(.jobsStatus, ["job": "j999-none"]) }?.code == .jobNotFound)
        #expect(daemonError { try client.call(.jobsResult, ["job": "nope"]) }?.code == .jobNotFound)
    }

    @Test func pingAnswersWhileALongJobRunsAndTheJobCanBeCancelled() throws {
        let daemon = try TestDaemon()
        defer { daemon.stop() }
        let worker = try daemon.client()
        let request = Request(id: "long", method: .undoPreview, params: Samples.longUndoParams(), stream: true,
                              frames: [Data(), try Samples.bigPicture()])
        try worker.send(request)
        let accepted = try #require(try worker.receive(for: "long", timeout: 60))
        #expect(accepted.type == .accepted)
        let job = try #require(accepted.job)
        // Wait until it runs, then the socket thread must still answer at once.
        let other = try daemon.client()
        var state = ""
        let deadline = Date().addingTimeInterval(60)  // generous: decoding is slow in a debug build on a slow machine
        while state != "running" && Date() < deadline {
            state = try other.call(.jobsStatus, ["job": .string(job)]).result["state"]?.stringValue ?? ""
            if state != "running" { Thread.sleep(forTimeInterval: 0.01) }
        }
        #expect(state == "running")
        let ping = try other.call(.ping, timeout: 60)
        #expect(ping.result["pong"] == true)
        #expect(try other.call(.jobsStatus, ["job": .string(job)]).result["state"] == "running")
        let cancel = try other.cancel(job: job)
        ReplySchema.check(cancel, method: .jobsCancel)
        #expect(cancel.result["was"] == "running")
        // The requester gets `cancelled`, after whatever progress was already sent.
        var final: Reply?
        while final == nil {
            let reply = try #require(try worker.receive(for: "long", timeout: 30))
            if reply.type == .error || reply.type == .result { final = reply }
        }
        #expect(final?.protocolError?.code == .cancelled)
        ReplySchema.check(try #require(final))
        #expect(try other.call(.jobsStatus, ["job": .string(job)]).result["state"] == "cancelled")
    }

    @Test func aQueuedJobIsCancelledAndTheQueueIsBounded() throws {
        let daemon = try TestDaemon { $0.queueCapacity = 1 }
        defer { daemon.stop() }
        let client = try daemon.client()
        let big = try Samples.bigPicture()
        for id in ["first", "second", "third"] {
            try client.send(Request(id: id, method: .undoPreview, params: Samples.longUndoParams(), frames: [Data(), big]))
            if id == "first" {
                // Let the worker take the first so the second is the one waiting.
                let accepted = try #require(try client.receive(for: "first", timeout: 60))
                var running = false
                let deadline = Date().addingTimeInterval(60)
                while !running && Date() < deadline {
                    running = try client.call(.jobsStatus, ["job": .string(accepted.job ?? "")]).result["state"] == "running"
                    if !running { Thread.sleep(forTimeInterval: 0.01) }
                }
            }
        }
        let second = try #require(try client.receive(for: "second", timeout: 60))
        #expect(second.type == .accepted)
        #expect(second.body["queue_position"] == 0)
        let third = try #require(try client.receive(for: "third", timeout: 60))
        #expect(third.protocolError?.code == .queueFull)
        let cancel = try client.cancel(job: try #require(second.job))
        #expect(cancel.result["was"] == "queued")
        #expect(try client.receive(for: "second", timeout: 60)?.protocolError?.code == .cancelled)
        let stats = try client.call(.jobsList).result["queue"]
        #expect(stats?["queued"] == 0)
        #expect(stats?["running"] == 1)
    }

    @Test func shutdownFinishesTheRunningJobThenRemovesTheSocket() throws {
        let daemon = try TestDaemon()
        let client = try daemon.client()
        let socketPath = String(daemon.endpoint.dropFirst(6))
        try client.send(Request(id: "work", method: .colorize, params: ["sketch": png.json],
                                frames: [Data(), try Samples.frame("umbrella-lineart")]))
        #expect(try client.receive(for: "work", timeout: 60)?.type == .accepted)
        let reply = try client.call(.shutdown, ["mode": "finish"])
        ReplySchema.check(reply, method: .shutdown)
        // A new job is refused while shutting down; the running one still delivers its result.
        let (_, refused) = try client.collect(.colorize, ["sketch": png.json], frames: [try Samples.frame("blocks-lineart")])
        #expect(refused.protocolError?.code == .shuttingDown)
        #expect(try client.receive(for: "work", timeout: 30)?.type == .result)
        daemon.server.wait()
        #expect(!FileManager.default.fileExists(atPath: socketPath))
        daemon.stop()
    }

    @Test func shutdownInCancelModeAnswersEveryUnfinishedJob() throws {
        let daemon = try TestDaemon()
        let client = try daemon.client()
        let big = try Samples.bigPicture()
        for id in ["running", "queued"] {
            try client.send(Request(id: id, method: .undoPreview, params: Samples.longUndoParams(), frames: [Data(), big]))
            #expect(try client.receive(for: id, timeout: 60)?.type == .accepted)
        }
        let reply = try client.call(.shutdown, ["mode": "cancel"])
        #expect(reply.result["unfinished_jobs"] == 2)
        for id in ["queued", "running"] {
            var final = try #require(try client.receive(for: id, timeout: 30))
            while final.type == .progress { final = try #require(try client.receive(for: id, timeout: 30)) }
            #expect(final.protocolError?.code == .cancelled, "\(id)")
        }
        daemon.server.wait()
        daemon.stop()
    }
}
