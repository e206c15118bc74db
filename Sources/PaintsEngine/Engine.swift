// PaintsEngine/Engine: the seam every engine implements (capabilities, load/unload, run with progress and cancellation).
import PaintsProtocol
import PaintsRaster

/// What a running job offers the engine: cancellation checks and progress reports. Implemented by the daemon.
public protocol JobContext: Sendable {
    /// Throws `ProtocolError(.cancelled)` once the job was cancelled; engines call it between steps.
    func checkCancellation() throws(ProtocolError)
    /// Reports progress; `fraction` is the whole job's completion in 0...1. `preview` is sent to streaming clients.
    func report(stage: String, step: Int, steps: Int, fraction: Double, preview: RGBAImage?)
}

/// A job context that reports nowhere and is never cancelled (benchmarks, command-line tools).
public struct DetachedJobContext: JobContext {
    public init() {}
    public func checkCancellation() throws(ProtocolError) {}
    public func report(stage: String, step: Int, steps: Int, fraction: Double, preview: RGBAImage?) {}
}

/// The context of a job's inner step run by another engine (the sd engine's fill under the lines, the undo engine's
/// tagger): cancelled with the job, its progress reports dropped (the outer engine reports its own stages).
public struct InnerStepContext: JobContext {
    let outer: JobContext
    public init(_ outer: JobContext) { self.outer = outer }
    public func checkCancellation() throws(ProtocolError) { try outer.checkCancellation() }
    public func report(stage: String, step: Int, steps: Int, fraction: Double, preview: RGBAImage?) {}
}

/// One option an engine accepts in a request's `options` object, described for clients (the Krita docker builds its
/// fields from these).
public struct EngineOption: Sendable {
    public enum Kind: String, Sendable {
        case integer, number, boolean, string
    }
    public var name: String
    public var kind: Kind
    public var defaultValue: JSONValue
    public var minimum: Double?
    public var maximum: Double?
    /// The values a string option takes, when they are a closed list (what is installed: models, ControlNets);
    /// clients offer them as a menu.
    public var choices: [String]?
    public var summary: String

    public init(_ name: String, _ kind: Kind, default defaultValue: JSONValue, minimum: Double? = nil, maximum: Double? = nil,
                choices: [String]? = nil, summary: String) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.minimum = minimum
        self.maximum = maximum
        self.choices = choices
        self.summary = summary
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = ["type": .string(kind.rawValue), "default": defaultValue, "description": .string(summary)]
        if let minimum { o["minimum"] = .number(minimum) }
        if let maximum { o["maximum"] = .number(maximum) }
        if let choices { o["enum"] = .array(choices.map { .string($0) }) }
        return .object(o)
    }
}

/// What an engine can do for one method.
public struct MethodCapabilities: Sendable {
    public var method: Method
    /// Inputs the engine uses (e.g. "sketch", "hints", "reference", "prompt"); others are accepted and ignored.
    public var inputs: [String]
    public var options: [EngineOption]

    public init(method: Method, inputs: [String], options: [EngineOption]) {
        self.method = method
        self.inputs = inputs
        self.options = options
    }

    public var json: JSONValue {
        ["inputs": .array(inputs.map { .string($0) }),
         "options": .object(Dictionary(uniqueKeysWithValues: options.map { ($0.name, $0.json) }))]
    }
}

/// Whether an engine can run now.
public enum EngineStatus: Sendable, Equatable {
    /// Loaded and resident.
    case ready
    /// Can run; its model is loaded on first use.
    case available
    /// Cannot run; the reason says why (e.g. model files missing, with the path looked at).
    case unavailable(reason: String)

    public var canRun: Bool {
        if case .unavailable = self { return false }
        return true
    }

    public var name: String {
        switch self {
        case .ready: "ready"
        case .available: "available"
        case .unavailable: "unavailable"
        }
    }
}

/// An engine: a named implementation of one or more job methods.
public protocol Engine: AnyObject, Sendable {
    var name: String { get }
    var summary: String { get }
    var capabilities: [MethodCapabilities] { get }
    var status: EngineStatus { get }
    /// Bytes the engine keeps resident (models, caches); 0 for engines without models.
    var residentBytes: Int { get }
    /// The model files the engine found, by kind (e.g. `controlnets`: each with what it is for), for clients to offer;
    /// nil for engines without files. Read by the daemon's census thread, never by its socket thread.
    var assets: [String: JSONValue]? { get }
    /// Makes the engine resident (loads weights). Idempotent.
    func load() throws(ProtocolError)
    /// Frees what `load` made resident.
    func unload()
    /// The most memory a job of this shape makes this engine hold at once, beyond what is resident before it starts:
    /// decoded inputs, working buffers, frames, and a model the job would load. The daemon refuses a job whose
    /// estimate does not fit its memory budget, before running it.
    func estimatedPeakBytes(_ job: JobShape) -> Int
    /// Drops what the engine keeps only to be faster next time (prompt and picture encodings), keeping its models.
    /// The daemon calls it when a job would not fit its memory budget otherwise.
    func releaseCaches()
}

extension Engine {
    public func releaseCaches() {}
}

/// What the daemon knows of a job before running it: enough to estimate its memory.
public struct JobShape: Sendable {
    public var method: Method
    /// The main picture (sketch or image), from its header.
    public var width: Int
    public var height: Int
    /// Other pictures of the job (hints, reference), in pixels.
    public var otherPixels: Int
    /// Frames the job returns (undo methods), 1 otherwise.
    public var frames: Int
    public var options: [String: JSONValue]

    public init(method: Method, width: Int, height: Int, otherPixels: Int = 0, frames: Int = 1, options: [String: JSONValue] = [:]) {
        self.method = method
        self.width = width
        self.height = height
        self.otherPixels = otherPixels
        self.frames = frames
        self.options = options
    }

    public var pixels: Int { width * height }

    /// Bytes of the pictures as decoded 8-bit RGBA, plus each returned frame kept encoded until the reply: counted at
    /// its raw size, which is what PNG takes for a picture it cannot compress.
    public var imageBytes: Int { 4 * (pixels + otherPixels) + 4 * pixels * frames }
}

/// The working memory of a diffusion model's pass at a working size, beyond its weights: the VAE decoder's last blocks
/// hold about four 128-channel float maps of the full working size (2 KiB per pixel), and the attention score blocks,
/// convolution columns and text encoder take a bounded 256 MiB more.
public enum ModelWorkingSet {
    public static func bytes(workingPixels: Int, batch: Int = 1) -> Int { 2048 * workingPixels * batch + (256 << 20) }

    /// The working pixels of a picture scaled so its longer side is `side` (when it is larger).
    public static func pixels(width: Int, height: Int, side: Int) -> Int {
        let longer = max(width, height, 1)
        let scale = min(1, Double(side) / Double(longer))
        return Int((Double(width) * scale).rounded(.up) * (Double(height) * scale).rounded(.up))
    }
}

extension Engine {
    public var residentBytes: Int { 0 }
    public var assets: [String: JSONValue]? { nil }

    public func supports(_ method: Method) -> Bool { capabilities.contains { $0.method == method } }

    /// The description `hello` and `engines.list` send.
    public var descriptionJSON: JSONValue { description(status: status, residentBytes: residentBytes) }

    /// The description with a status and resident size read earlier.
    public func description(status: EngineStatus, residentBytes: Int) -> JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "description": .string(summary), "status": .string(status.name),
            "methods": .array(capabilities.map { .string($0.method.rawValue) }),
            "capabilities": .object(Dictionary(uniqueKeysWithValues: capabilities.map { ($0.method.rawValue, $0.json) })),
            "resident_bytes": JSONValue(residentBytes),
        ]
        if case .unavailable(let reason) = status { o["reason"] = .string(reason) }
        if let assets { o["assets"] = .object(assets) }
        return .object(o)
    }
}

/// Inputs of a colorize job, decoded.
public struct ColorizeInput: Sendable {
    public var sketch: RGBAImage
    public var hints: RGBAImage?
    public var reference: RGBAImage?
    public var prompt: String
    public var negativePrompt: String
    public var seed: Int
    public var options: [String: JSONValue]

    public init(sketch: RGBAImage, hints: RGBAImage? = nil, reference: RGBAImage? = nil, prompt: String = "",
                negativePrompt: String = "", seed: Int = 0, options: [String: JSONValue] = [:]) {
        self.sketch = sketch
        self.hints = hints
        self.reference = reference
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.seed = seed
        self.options = options
    }
}

/// One layer of a colorize result, for the client to place under the line art.
public struct ColorizeLayer: Sendable {
    /// What the layer is: `color` (the colour to go under the line art), `flats` (the flat fill it came from)...
    public var name: String
    public var image: RGBAImage
    /// Whether the client shows it (layers kept for editing, such as the flats, come hidden).
    public var visible: Bool

    public init(name: String, image: RGBAImage, visible: Bool = true) {
        self.name = name
        self.image = image
        self.visible = visible
    }
}

/// A colorized picture the size of the sketch, its layers, and what the engine wants the client to know (`info`).
public struct ColorizeOutput: Sendable {
    /// One picture for clients that want one: the colour with the line art over it (or the layer itself, for engines
    /// that make one layer).
    public var image: RGBAImage
    /// The layers, top first, each the sketch's size; empty means one `color` layer that is `image`.
    public var layers: [ColorizeLayer]
    public var info: [String: JSONValue]

    public init(image: RGBAImage, layers: [ColorizeLayer] = [], info: [String: JSONValue] = [:]) {
        self.image = image
        self.layers = layers
        self.info = info
    }
}

/// Inputs of an undo-preview job, decoded.
public struct UndoPreviewInput: Sendable {
    public var image: RGBAImage
    public var steps: [Int]
    public var seed: Int
    public var prompt: String
    public var options: [String: JSONValue]

    public init(image: RGBAImage, steps: [Int], seed: Int = 0, prompt: String = "", options: [String: JSONValue] = [:]) {
        self.image = image
        self.steps = steps
        self.seed = seed
        self.prompt = prompt
        self.options = options
    }
}

/// One undo-step preview frame.
public struct UndoFrame: Sendable {
    public var step: Int
    public var image: RGBAImage

    public init(step: Int, image: RGBAImage) {
        self.step = step
        self.image = image
    }
}

/// An engine that colorizes line art.
public protocol ColorizeEngine: Engine {
    func colorize(_ input: ColorizeInput, context: JobContext) throws(ProtocolError) -> ColorizeOutput
}

/// Undo-step frames with what the engine wants the client to know (`info`: prompt used, working size...).
public struct UndoPreviewOutput: Sendable {
    public var frames: [UndoFrame]
    public var info: [String: JSONValue]

    public init(frames: [UndoFrame], info: [String: JSONValue] = [:]) {
        self.frames = frames
        self.info = info
    }
}

/// Takes each finished frame as soon as it is made; the engine keeps no reference to a frame it has handed over, so a
/// job never holds more decoded frames than the one being made.
public typealias UndoFrameSink = (UndoFrame) throws(ProtocolError) -> Void

/// An engine that shows what a picture looked like earlier in its making.
public protocol UndoPreviewEngine: Engine {
    /// Emits one frame per requested step, in the order asked; returns what the client should know (`info`).
    func undoPreview(_ input: UndoPreviewInput, context: JobContext,
                     emit: UndoFrameSink) throws(ProtocolError) -> [String: JSONValue]
}

extension UndoPreviewEngine {
    /// Every frame at once (tests, benchmarks, small pictures).
    public func undoPreview(_ input: UndoPreviewInput, context: JobContext) throws(ProtocolError) -> UndoPreviewOutput {
        var frames: [UndoFrame] = []
        let info = try undoPreview(input, context: context) { frame throws(ProtocolError) in frames.append(frame) }
        return UndoPreviewOutput(frames: frames, info: info)
    }
}

/// Inputs of a tag job, decoded.
public struct TagInput: Sendable {
    public var image: RGBAImage
    /// Probability a general tag must pass (strictly).
    public var threshold: Double
    /// Probability a character tag must pass (strictly).
    public var characterThreshold: Double
    /// Tag names left out (as in the label file, compared lowercased).
    public var exclude: [String]
    public var options: [String: JSONValue]

    public init(image: RGBAImage, threshold: Double = 0.35, characterThreshold: Double = 0.85, exclude: [String] = [],
                options: [String: JSONValue] = [:]) {
        self.image = image
        self.threshold = threshold
        self.characterThreshold = characterThreshold
        self.exclude = exclude
        self.options = options
    }
}

/// Tags of a picture and the prompt made of them.
public struct TagOutput: Sendable {
    public struct Tag: Sendable {
        public var name: String
        /// "general" or "character".
        public var category: String
        public var probability: Double
    }
    public var tags: [Tag]
    public var prompt: String
    public var ratings: [(name: String, probability: Double)]
    public var info: [String: JSONValue]
}

/// An engine that names what a picture shows, as prompt tags.
public protocol TagEngine: Engine {
    func tag(_ input: TagInput, context: JobContext) throws(ProtocolError) -> TagOutput
}
