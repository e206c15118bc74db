// PaintsEngine/BuiltinEngines: the engines every daemon has, needing no model files.
import PaintsProtocol

public enum BuiltinEngines {
    /// A registry with the built-in colorizer and undo simulator as defaults.
    public static func registry() -> EngineRegistry {
        EngineRegistry(engines: [BuiltinEngine()])
    }
}

/// The embedded default engine: `colorize` by region fill and `undo.preview` by drawing-process simulation.
public final class BuiltinEngine: ColorizeEngine, UndoPreviewEngine {
    let colorizer = BuiltinColorizer()
    let simulator = BuiltinUndoSimulator()

    public init() {}
    public let name = "builtin"
    public let summary = "Built-in engines needing no model files: LazyBrush-style colorize, drawing-process undo previews"
    public var status: EngineStatus { .ready }
    public var capabilities: [MethodCapabilities] { [BuiltinColorizer.capabilities, BuiltinUndoSimulator.capabilities, BuiltinUndoSimulator.sequenceCapabilities] }
    public func load() throws(ProtocolError) {}
    public func unload() {}

    public func colorize(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> ColorizeOutput {
        try colorizer.colorize(input, context: context)
    }

    public func undoPreview(_ input: UndoPreviewInput, context: JobContext,
                            emit: UndoFrameSink) throws(ProtocolError) -> [String: JSONValue] {
        try simulator.undoPreview(input, context: context, emit: emit)
        return ["simulated": true, "summary": "a drawing-process simulation, not a learned model"]
    }

    public func estimatedPeakBytes(_ job: JobShape) -> Int {
        job.imageBytes + (job.method == .colorize ? BuiltinColorizer.bytesPerPixel : BuiltinUndoSimulator.bytesPerPixel) * job.pixels
    }
}
