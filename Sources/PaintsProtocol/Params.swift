// PaintsProtocol/Params: the typed params of each method, read from a request's params object.

/// How result images are encoded in reply frames.
public enum OutputEncoding: String, Sendable, CaseIterable {
    case png
    case rgba8
}

/// Upper bound of seeds (integers exact in JSON doubles).
public let maxSeed = (1 << 53) - 1

/// `colorize`: line art plus optional colour scribbles and reference.
public struct ColorizeParams: Sendable {
    /// The params that hold image references.
    public static let imageParams = ["sketch", "hints", "reference"]
    public var sketch: ImageReference
    public var hints: ImageReference?
    public var reference: ImageReference?
    public var prompt: String
    public var negativePrompt: String
    public var engine: String?
    public var seed: Int?
    public var options: [String: JSONValue]
    public var output: OutputEncoding

    public init(sketch: ImageReference, hints: ImageReference? = nil, reference: ImageReference? = nil, prompt: String = "",
                negativePrompt: String = "", engine: String? = nil, seed: Int? = nil, options: [String: JSONValue] = [:],
                output: OutputEncoding = .png) {
        self.sketch = sketch
        self.hints = hints
        self.reference = reference
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.engine = engine
        self.seed = seed
        self.options = options
        self.output = output
    }

    public init(_ params: [String: JSONValue]) throws(ProtocolError) {
        var r = ParamReader(params)
        sketch = try r.requiredImage("sketch")
        hints = try r.image("hints")
        reference = try r.image("reference")
        prompt = try r.string("prompt") ?? ""
        negativePrompt = try r.string("negative_prompt") ?? ""
        engine = try r.string("engine")
        seed = try r.int("seed", in: 0...maxSeed)
        options = try r.object("options") ?? [:]
        output = try r.choice("output", as: OutputEncoding.self) ?? .png
        try r.finish()
    }

    public var json: [String: JSONValue] {
        var o: [String: JSONValue] = ["sketch": sketch.json, "options": .object(options), "output": .string(output.rawValue)]
        if let hints { o["hints"] = hints.json }
        if let reference { o["reference"] = reference.json }
        if !prompt.isEmpty { o["prompt"] = .string(prompt) }
        if !negativePrompt.isEmpty { o["negative_prompt"] = .string(negativePrompt) }
        if let engine { o["engine"] = .string(engine) }
        if let seed { o["seed"] = JSONValue(seed) }
        return o
    }
}

/// `undo.preview` and `undo.sequence`: a finished picture and the operation steps to show.
public struct UndoPreviewParams: Sendable {
    /// The params that hold image references.
    public static let imageParams = ["image"]
    public static let stepRange = 0...999
    public static let maxFrames = 64
    /// The keyframes the Paints-UNDO reference app shows, used when neither `steps` nor `count` is given.
    public static let defaultKeyframes = [400, 600, 800, 900, 950, 999]
    public var image: ImageReference
    /// Operation steps in the order asked: 0 is the finished picture, 999 the first stroke on a blank canvas.
    public var steps: [Int]
    public var engine: String?
    public var seed: Int?
    public var prompt: String
    public var options: [String: JSONValue]
    public var output: OutputEncoding

    public init(image: ImageReference, steps: [Int], engine: String? = nil, seed: Int? = nil, prompt: String = "",
                options: [String: JSONValue] = [:], output: OutputEncoding = .png) {
        self.image = image
        self.steps = steps
        self.engine = engine
        self.seed = seed
        self.prompt = prompt
        self.options = options
        self.output = output
    }

    /// `count` evenly spaced steps from the finished picture (exclusive) to the blank canvas (inclusive), ascending.
    public static func evenlySpacedSteps(count: Int) -> [Int] {
        (1...count).map { Int((Double($0) * 999.0 / Double(count)).rounded()) }
    }

    public init(_ params: [String: JSONValue]) throws(ProtocolError) {
        var r = ParamReader(params)
        image = try r.requiredImage("image")
        let listed = try r.intList("steps", in: Self.stepRange, maxCount: Self.maxFrames)
        let count = try r.int("count", in: 1...Self.maxFrames)
        switch (listed, count) {
        case (let s?, nil): steps = s
        case (nil, let n?): steps = Self.evenlySpacedSteps(count: n)
        case (nil, nil): steps = Self.defaultKeyframes
        case (.some, .some):
            throw ProtocolError(.invalidParams, "give \"steps\" or \"count\", not both", details: ["param": "count"])
        }
        engine = try r.string("engine")
        seed = try r.int("seed", in: 0...maxSeed)
        prompt = try r.string("prompt") ?? ""
        options = try r.object("options") ?? [:]
        output = try r.choice("output", as: OutputEncoding.self) ?? .png
        try r.finish()
    }

    public var json: [String: JSONValue] {
        var o: [String: JSONValue] = [
            "image": image.json, "steps": .array(steps.map { JSONValue($0) }), "options": .object(options),
            "output": .string(output.rawValue),
        ]
        if let engine { o["engine"] = .string(engine) }
        if let seed { o["seed"] = JSONValue(seed) }
        if !prompt.isEmpty { o["prompt"] = .string(prompt) }
        return o
    }
}

/// `undo.sequence`: its frames run blank canvas (`kind` "blank", step 1000), keyframes from step 999 down, then the
/// finished picture (`kind` "finished", step 0: the input itself).
public enum UndoSequence {
    public static let blankStep = 1000
}

/// `tag`: Danbooru tags of a picture, as a prompt.
public struct TagParams: Sendable {
    /// The params that hold image references.
    public static let imageParams = ["image"]
    public var image: ImageReference
    public var threshold: Double
    public var characterThreshold: Double
    public var exclude: [String]
    public var engine: String?
    public var options: [String: JSONValue]

    public init(_ params: [String: JSONValue]) throws(ProtocolError) {
        var r = ParamReader(params)
        image = try r.requiredImage("image")
        threshold = try r.double("threshold", in: 0...1) ?? 0.35
        characterThreshold = try r.double("character_threshold", in: 0...1) ?? 0.85
        exclude = try r.stringList("exclude") ?? []
        engine = try r.string("engine")
        options = try r.object("options") ?? [:]
        try r.finish()
    }
}

/// `jobs.status`, `jobs.cancel`, `jobs.result`: one job id.
public struct JobParams: Sendable {
    public var job: String

    public init(job: String) { self.job = job }

    public init(_ params: [String: JSONValue]) throws(ProtocolError) {
        var r = ParamReader(params)
        job = try r.requiredString("job")
        try r.finish()
    }
}

/// `shutdown`: whether to finish queued and running jobs first or cancel them.
public struct ShutdownParams: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        case finish
        case cancel
    }
    public var mode: Mode?

    public init(_ params: [String: JSONValue]) throws(ProtocolError) {
        var r = ParamReader(params)
        mode = try r.choice("mode", as: Mode.self)
        try r.finish()
    }
}

/// Methods that take no params: anything given is an error.
public func requireNoParams(_ params: [String: JSONValue]) throws(ProtocolError) {
    try ParamReader(params).finish()
}
