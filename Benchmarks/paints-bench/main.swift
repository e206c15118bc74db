// paints-bench: prints the figures `make bench` promises: built-in engine speed at 2048x2048, PNG codec speed,
// and socket round trips to a live daemon (idle and while a job runs). Run from the repository root, release build.
import Foundation
import Logging
import PaintsClient
import PaintsDaemon
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTensor

OpenBLASKernel.selectBestKernelOrReexecute()

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Runs `body` `count` times; returns the median seconds.
func time(_ count: Int, _ body: () throws -> Void) rethrows -> Double {
    var samples: [Double] = []
    for _ in 0..<count {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return median(samples)
}

func line(_ name: String, _ value: String) { print(name.padding(toLength: 52, withPad: " ", startingAt: 0) + value) }

let art = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Examples/art"
let sketch512 = try PNGCodec.read(path: art + "/umbrella-lineart.png")
let hints512 = try PNGCodec.read(path: art + "/umbrella-hints.png")
let colored512 = try PNGCodec.read(path: art + "/umbrella-colored.png")
let side = 2048
let sketch = sketch512.resized(width: side, height: side)
let hints = hints512.resized(width: side, height: side)
let picture = colored512.resized(width: side, height: side)

print("paints-bench (release build; medians) on \(ProcessInfo.processInfo.activeProcessorCount) cores; OpenBLAS kernel \(BLAS.coreName)")
let engine = BuiltinEngine()
let context = DetachedJobContext()
let colorize = try time(5) { _ = try engine.colorize(ColorizeInput(sketch: sketch, hints: hints), context: context) }
line("builtin colorize 2048x2048 (hints)", String(format: "%.3f s", colorize))
let withReference = try time(3) {
    _ = try engine.colorize(ColorizeInput(sketch: sketch, reference: picture, options: ["composite_lines": true]), context: context)
}
line("builtin colorize 2048x2048 (reference palette)", String(format: "%.3f s", withReference))
let undoOne = try time(3) { _ = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [500]), context: context) }
let undoSix = try time(3) {
    _ = try engine.undoPreview(UndoPreviewInput(image: picture, steps: [400, 600, 800, 900, 950, 999]), context: context)
}
line("builtin undo.preview 2048x2048, 1 frame", String(format: "%.3f s", undoOne))
line("builtin undo.preview 2048x2048, 6 frames", String(format: "%.3f s (%.3f s per extra frame)", undoSix, (undoSix - undoOne) / 5))
var encoded = Data()
let encodeFast = try time(5) { encoded = try PNGCodec.encode(picture, fast: true) }
line("PNG encode 2048x2048 (fast)", String(format: "%.3f s, %d KiB", encodeFast, encoded.count / 1024))
let decode = try time(5) { _ = try PNGCodec.decode(encoded) }
line("PNG decode 2048x2048", String(format: "%.3f s", decode))

// Socket round trips against a live in-process daemon.
let directory = "/tmp/paints-bench-\(getpid())"
var logger = Logger(label: "bench")
logger.logLevel = .error
let server = PaintsServer(configuration: DaemonConfiguration(endpoints: ["ipc://\(directory)/paintsd.sock"]),
                          engines: BuiltinEngines.registry(), logger: logger)
let endpoint = try server.start()[0]
let client = try PaintsClient(endpoint: endpoint)
@MainActor func pings(_ count: Int) throws -> [Double] {
    try (0..<count).map { _ in
        let start = DispatchTime.now().uptimeNanoseconds
        _ = try client.call(.ping)
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3
    }
}
_ = try pings(50)
let idle = try pings(2000).sorted()
line("ping round trip, idle daemon (ipc)", String(format: "mean %.0f us, p50 %.0f us, p99 %.0f us",
                                                  idle.reduce(0, +) / Double(idle.count), idle[idle.count / 2], idle[idle.count * 99 / 100]))
let worker = try PaintsClient(endpoint: endpoint)
let big = try PNGCodec.encode(picture, fast: true)
try worker.send(Request(id: "busy", method: .undoPreview, params: ["image": ["frame": 1, "encoding": "png"], "count": 12],
                        frames: [Data(), big]))
Thread.sleep(forTimeInterval: 0.3)
let busy = try pings(300).sorted()
line("ping round trip while a 2048x2048 job runs", String(format: "mean %.0f us, p50 %.0f us, p99 %.0f us",
                                                          busy.reduce(0, +) / Double(busy.count), busy[busy.count / 2], busy[busy.count * 99 / 100]))
let start = Date()
let roundTrip = try client.call(Request(id: "rt", method: .colorize, params: ["sketch": ["frame": 1, "encoding": "png"],
                                                                              "hints": ["frame": 2, "encoding": "png"]],
                                        frames: [Data(), try PNGCodec.encode(sketch), try PNGCodec.encode(hints)]), timeout: 120)
line("colorize 2048x2048 over the socket, end to end", String(format: "%.3f s (queued behind the job above; timings %@)",
                                                              Date().timeIntervalSince(start),
                                                              roundTrip.result["timings"]?.serializedString() ?? "?"))
_ = try? worker.cancel(job: "none")
server.requestShutdown(mode: .cancel)
server.wait()
try? FileManager.default.removeItem(atPath: directory)
