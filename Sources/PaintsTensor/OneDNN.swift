// PaintsTensor/OneDNN: the oneDNN calls the engines use (2-D convolution, attention's batched matrix products), each
// primitive built once per shape and kept, and which kernels oneDNN picked on this CPU.
//
// Why: oneDNN's convolutions skip the im2col buffer and run its own JIT kernels (brgconv on AVX-512, jit:avx2 on
// AVX2) on channels-last activations with its blocked weight layout; on plain NCHW it falls back to gemm:jit, no faster
// than OpenBLAS. Which convolutions it runs: `backend` (PAINTSD_KERNELS=mixed, the default, onednn or openblas).
// OpenBLAS runs the linear layers always, and takes over when a oneDNN primitive cannot be made.
import CDNNL
import CTensorKernels
import Foundation
import Synchronization

public enum OneDNN {
    /// Which library runs convolutions (and attention's products on the GEMM path): `mixed` puts the convolutions with
    /// at least `mixedMinimumPixels` output pixels on oneDNN and the rest on OpenBLAS; `onednn` and `openblas` put all
    /// of them on one library.
    public enum Backend: String, Sendable, CaseIterable {
        case mixed, onednn, openblas
    }

    /// The precision of the convolutions' products: `f32`, or `bf16` (activations and weights rounded to bfloat16, products
    /// summed in float32, every convolution on oneDNN) on CPUs with bfloat16 dot products (AVX512-BF16, AMX).
    /// `PAINTSD_PRECISION=bf16` asks for it; elsewhere it stays `f32`.
    public enum Precision: String, Sendable, CaseIterable {
        case f32, bf16
    }

    /// Whether this CPU has bfloat16 dot products (and oneDNN an engine to run them).
    public static let hasBF16 = pk_cpu_has_bf16_dot() != 0 && runtime != nil

    private static let precisionChoice = Atomic<Bool>(ProcessInfo.processInfo.environment["PAINTSD_PRECISION"] == "bf16")

    /// The precision of convolutions now: `bf16` when asked for (PAINTSD_PRECISION, a benchmark, `precisionOverride`)
    /// and the CPU has it, else `f32`.
    public static var precision: Precision {
        get {
            let asked = precisionOverride ?? (precisionChoice.load(ordering: .relaxed) ? .bf16 : .f32)
            return asked == .bf16 && hasBF16 ? .bf16 : .f32
        }
        set { precisionChoice.store(newValue == .bf16, ordering: .relaxed) }
    }

    /// The precision for the computations of this task only (tests and benchmarks compare both).
    @TaskLocal public static var precisionOverride: Precision?

    /// Output pixels (all images) from which `mixed` uses oneDNN: the VAE's 128x128 levels and up at 512x512, where
    /// its weight reorder (paid on every call) and the two transposes are small beside the convolution. On the Zen 4
    /// machine oneDNN ran the VAE decode and encode 1.12x and 1.09x faster than OpenBLAS, and the UNet pass (64x64 and
    /// smaller levels) 0.91-0.95x, so the UNet stays on OpenBLAS (`paints-bench-diffusion --kernels`).
    public static let mixedMinimumPixels = 16384
    /// Another threshold for this task's convolutions (benchmarks try others).
    @TaskLocal public static var mixedMinimumPixelsOverride: Int?

    /// Output pixels (all images) from which a float32 3x3 convolution of stride 1 runs on oneDNN's Winograd F(4x4, 3x3)
    /// kernel with PAINTSD_WINOGRAD=onednn: its weight transform (paid on every call: kept, it would take 4x the
    /// weights' memory) costs about what the convolution saves at 64x64, and a fraction of it from 128x128 up.
    public static let winogradMinimumPixels = 16384
    /// Whether Winograd convolutions are used: yes unless `PAINTSD_WINOGRAD=0` or a benchmark turned them off
    /// (`PAINTSD_WINOGRAD=onednn` takes oneDNN's kernel where it has one).
    public static var winograd: Bool {
        get { winogradOverride ?? winogradChoice.load(ordering: .relaxed) }
        set { winogradChoice.store(newValue, ordering: .relaxed) }
    }
    private static let winogradChoice = Atomic<Bool>(ProcessInfo.processInfo.environment["PAINTSD_WINOGRAD"] != "0")
    /// Whether large convolutions take oneDNN's Winograd kernel where it has one (PAINTSD_WINOGRAD=onednn). Not the
    /// default: on the Zen 4 machine it ran the VAE decode no faster than the sgemm form (9.3-9.6 s against 9.5-9.7 s)
    /// and its weight layout, scratchpad and blocked copies put a 512x512 txt2img at 2.82-2.88 GiB (2.79 with the sgemm
    /// form); its weight transform, paid on every call, rules it out for the UNet.
    public static let winogradOnOneDNN = ProcessInfo.processInfo.environment["PAINTSD_WINOGRAD"] == "onednn" && winogradKernel != nil
    /// Winograd on or off for this task only (tests and benchmarks compare both).
    @TaskLocal public static var winogradOverride: Bool?
    /// The Winograd kernel oneDNN has on this CPU (`jit_wino_4x3:avx512_core` on AVX-512), nil where it has none.
    public static let winogradKernel: String? = {
        // A VAE-like shape (on tiny ones oneDNN picks its F(2x2, 3x3) kernel instead).
        let probe = ConvolutionShape(n: 1, c: 128, h: 128, w: 128, o: 128, kh: 3, kw: 3, stride: 1, paddingTop: 1, paddingBottom: 1,
                                     paddingW: 1, bias: false)
        return winogradConvolution(WinogradShape(convolution: probe, sourceImage: 128 << 14, sourceChannel: 1 << 14,
                                                 destinationImage: 128 << 14, destinationChannel: 1 << 14))?.implementation
    }()

    private static let backendChoice = Atomic<Int>(
        Backend.allCases.firstIndex { $0.rawValue == ProcessInfo.processInfo.environment["PAINTSD_KERNELS"] } ?? 0)

    /// `mixed` unless `PAINTSD_KERNELS` names another or a benchmark set it; `openblas` when oneDNN has no engine.
    public static var backend: Backend {
        get {
            guard runtime != nil else { return .openblas }
            return backendOverride ?? Backend.allCases[backendChoice.load(ordering: .relaxed)]
        }
        set { backendChoice.store(Backend.allCases.firstIndex(of: newValue) ?? 0, ordering: .relaxed) }
    }

    /// The backend for the computations of this thread or task only (tests compare the two side by side).
    @TaskLocal public static var backendOverride: Backend?

    /// The CPU engine; nil when oneDNN cannot make one.
    static let runtime: Runtime? = Runtime()

    final class Runtime: @unchecked Sendable {
        // Sendable: the engine is thread-safe in oneDNN; `primitives` is only touched under its mutex.
        let engine: dnnl_engine_t
        let primitives = Mutex<[PrimitiveKey: Primitive]>([:])

        init?() {
            var engine: dnnl_engine_t?
            guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
            self.engine = engine
        }
    }

    /// A convolution's shapes: what a primitive is built for.
    enum PrimitiveKey: Hashable, Sendable {
        case convolution(ConvolutionShape)
        case winograd(WinogradShape)
        case matmul(MatmulShape)
        case linear(LinearShape)
    }

    /// A fully connected layer's shapes: [rows, inputs] x [outputs, inputs]^T, in float32 or bfloat16.
    struct LinearShape: Hashable, Sendable {
        var rows, inputs, outputs: Int
        var bias: Bool
        var bf16: Bool
        /// Float32 weights in the kernel's blocked layout (packed once and kept: `Weight.packed(for:)`).
        var packed = false
        /// The epilogue: y * sigmoid(gate * y) when gate != 0, then added to what the destination holds (`accumulate`).
        var gate: Float = 0
        var accumulate = false

        init(rows: Int, inputs: Int, outputs: Int, bias: Bool, bf16: Bool, gate: Float = 0, accumulate: Bool = false) {
            (self.rows, self.inputs, self.outputs, self.bias, self.bf16) = (rows, inputs, outputs, bias, bf16)
            (self.gate, self.accumulate) = (gate, accumulate)
        }
    }

    /// A channels-last convolution: src [n, h, w, c], dst [n, oh, ow, o]; a band of a taller image pads only the ends
    /// it has (`paddingTop`, `paddingBottom`).
    struct ConvolutionShape: Hashable, Sendable {
        var n, c, h, w, o, kh, kw, stride, paddingTop, paddingBottom, paddingW: Int
        var bias: Bool
        /// bfloat16 source and weights (float32 otherwise).
        var bf16 = false
    }

    /// A float32 3x3 convolution, stride 1, by Winograd F(4x4, 3x3): `convolution` gives the sizes (its `kh`, `kw`,
    /// `stride` and `bf16` unused), the strides place its plain NCHW source and destination inside larger tensors
    /// (elements between images and between channels), as a band of rows reads and writes them.
    struct WinogradShape: Hashable, Sendable {
        var convolution: ConvolutionShape
        var sourceImage, sourceChannel, destinationImage, destinationChannel: Int
    }

    final class Primitive: @unchecked Sendable {
        // Sendable: oneDNN primitives may be executed from several threads at once.
        let handle: dnnl_primitive_t
        let implementation: String
        /// Floats of scratchpad each execution needs.
        let scratchpadFloats: Int
        /// A convolution's reorder from plain oihw weights into its kernel's layout (nil: it takes oihw), and the
        /// floats that layout takes.
        let weightsReorder: Primitive?
        let weightFloats: Int
        /// A Winograd convolution's reorders from the plain source into its blocked layout and from its blocked
        /// destination back, and the floats of each blocked tensor.
        let sourceReorder: Primitive?, destinationReorder: Primitive?
        let sourceFloats: Int, destinationFloats: Int

        init(handle: dnnl_primitive_t, implementation: String, weightsReorder: Primitive? = nil, weightFloats: Int = 0,
             sourceReorder: Primitive? = nil, sourceFloats: Int = 0, destinationReorder: Primitive? = nil, destinationFloats: Int = 0) {
            self.handle = handle
            self.implementation = implementation
            scratchpadFloats = (cdnnl_scratchpad_bytes(handle) + 3) / 4
            self.weightsReorder = weightsReorder
            self.weightFloats = weightFloats
            self.sourceReorder = sourceReorder
            self.sourceFloats = sourceFloats
            self.destinationReorder = destinationReorder
            self.destinationFloats = destinationFloats
        }

        deinit { dnnl_primitive_destroy(handle) }
    }

    /// A batched product's shapes and strides (elements: batch, row, column), and its scale.
    struct MatmulShape: Hashable, Sendable {
        var batch, m, n, k: Int
        var a, b, c: [Int]
        var scale: Float
    }

    /// Most primitives kept: the shapes of a UNet, a VAE and a ControlNet at two sizes stay well below it.
    static let maxPrimitives = 512

    /// The cached primitive of `key`, else `make`'s, kept.
    static func primitive(_ key: PrimitiveKey, in runtime: Runtime, make: () -> Primitive?) -> Primitive? {
        if let hit = runtime.primitives.withLock({ $0[key] }) { return hit }
        guard let made = make() else { return nil }
        runtime.primitives.withLock { cache in
            if cache.count >= maxPrimitives { cache.removeAll() }
            cache[key] = made
        }
        return made
    }

    /// A primitive from `create` (which fills in a handle and the kernel's name); nil when oneDNN refused.
    static func created(_ create: (UnsafeMutablePointer<dnnl_primitive_t?>, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> dnnl_status_t) -> Primitive? {
        var handle: dnnl_primitive_t?
        var implementation: UnsafePointer<CChar>?
        guard create(&handle, &implementation) == dnnl_success, let handle else { return nil }
        return Primitive(handle: handle, implementation: implementation.map { String(cString: $0) } ?? "unknown")
    }

    /// Runs `primitive` on `handles` (by oneDNN argument name) on a stream of its own: oneDNN streams are not for
    /// concurrent use, and two jobs may compute at once.
    static func execute(_ primitive: Primitive, in runtime: Runtime, _ handles: [(Int32, UnsafeRawPointer?)]) -> Bool {
        var stream: dnnl_stream_t?
        guard dnnl_stream_create(&stream, runtime.engine, UInt32(dnnl_stream_default_flags.rawValue)) == dnnl_success,
              let stream else { return false }
        defer { dnnl_stream_destroy(stream) }
        // The scratchpad is one of the reused buffers, so its pages stay resident between calls.
        return ScratchBuffers.shared.with(count: max(1, primitive.scratchpadFloats)) { scratchpad in
            let all = handles + [(DNNL_ARG_SCRATCHPAD, primitive.scratchpadFloats > 0 ? UnsafeRawPointer(scratchpad) : nil)]
            let names = all.map(\.0)
            let pointers = all.map { UnsafeMutableRawPointer(mutating: $0.1) }
            return cdnnl_execute(primitive.handle, runtime.engine, stream, Int32(all.count), names, pointers) == dnnl_success
        }
    }

    /// The convolution primitive of `shape` (channels-last), with its weight reorder; nil when oneDNN cannot make it.
    static func convolution(_ shape: ConvolutionShape) -> Primitive? {
        guard let runtime else { return nil }
        return primitive(.convolution(shape), in: runtime) {
            var handle: dnnl_primitive_t?, reorder: dnnl_primitive_t?
            var bytes = 0
            var implementation: UnsafePointer<CChar>?
            guard cdnnl_conv2d_nhwc_create(runtime.engine, Int64(shape.n), Int64(shape.c), Int64(shape.h), Int64(shape.w),
                                           Int64(shape.o), Int64(shape.kh), Int64(shape.kw), Int64(shape.stride),
                                           Int64(shape.paddingTop), Int64(shape.paddingBottom), Int64(shape.paddingW),
                                           shape.bias ? 1 : 0, shape.bf16 ? 1 : 0, &handle, &reorder, &bytes,
                                           &implementation) == dnnl_success,
                  let handle
            else { return nil }
            // A bfloat16 convolution only on a JIT kernel: oneDNN's reference one would be far slower than float32.
            let name = implementation.map { String(cString: $0) } ?? "unknown"
            if shape.bf16 && name.hasPrefix("ref") {
                dnnl_primitive_destroy(handle)
                if let reorder { dnnl_primitive_destroy(reorder) }
                return nil
            }
            let weightsReorder = reorder.map { Primitive(handle: $0, implementation: "reorder") }
            return Primitive(handle: handle, implementation: implementation.map { String(cString: $0) } ?? "unknown",
                             weightsReorder: weightsReorder, weightFloats: (bytes + 3) / 4)
        }
    }

    /// The Winograd convolution of `shape` with its three reorders (weights, source, destination); nil when oneDNN has no
    /// Winograd kernel for it on this CPU (it has one on AVX-512 only).
    static func winogradConvolution(_ shape: WinogradShape) -> Primitive? {
        guard let runtime else { return nil }
        return primitive(.winograd(shape), in: runtime) {
            let s = shape.convolution
            var handle: dnnl_primitive_t?, weights: dnnl_primitive_t?, source: dnnl_primitive_t?, destination: dnnl_primitive_t?
            var weightBytes = 0, sourceBytes = 0, destinationBytes = 0
            var implementation: UnsafePointer<CChar>?
            guard cdnnl_conv2d_winograd_create(runtime.engine, Int64(s.n), Int64(s.c), Int64(s.h), Int64(s.w), Int64(s.o),
                                               Int64(s.paddingTop), Int64(s.paddingBottom), Int64(s.paddingW), s.bias ? 1 : 0,
                                               Int64(shape.sourceImage), Int64(shape.sourceChannel), Int64(shape.destinationImage),
                                               Int64(shape.destinationChannel), &handle, &weights, &weightBytes, &source,
                                               &sourceBytes, &destination, &destinationBytes, &implementation) == dnnl_success,
                  let handle, let source, let destination
            else { return nil }
            func reorder(_ p: dnnl_primitive_t?) -> Primitive? { p.map { Primitive(handle: $0, implementation: "reorder") } }
            return Primitive(handle: handle, implementation: implementation.map { String(cString: $0) } ?? "unknown",
                             weightsReorder: reorder(weights), weightFloats: (weightBytes + 3) / 4,
                             sourceReorder: reorder(source), sourceFloats: (sourceBytes + 3) / 4,
                             destinationReorder: reorder(destination), destinationFloats: (destinationBytes + 3) / 4)
        }
    }

    /// Whether two convolutions take their weights in the same layout (a Winograd kernel's can depend on the shape).
    static func sameWeights(_ a: Primitive, _ b: Primitive) -> Bool { a === b || cdnnl_same_weights(a.handle, b.handle) != 0 }

    /// Runs `reorder` from `source` into `target`; false when oneDNN could not.
    static func reorder(_ reorder: Primitive, from source: UnsafeRawPointer, to target: UnsafeMutableRawPointer) -> Bool {
        guard let runtime else { return false }
        return execute(reorder, in: runtime, [(DNNL_ARG_FROM, source), (DNNL_ARG_TO, UnsafeRawPointer(target))])
    }

    /// The fully connected layer of `shape`, with its weight reorder (bfloat16); nil when oneDNN cannot make it on a JIT
    /// kernel.
    static func linear(_ shape: LinearShape) -> Primitive? {
        guard let runtime else { return nil }
        return primitive(.linear(shape), in: runtime) {
            var handle: dnnl_primitive_t?, reorder: dnnl_primitive_t?
            var bytes = 0
            var implementation: UnsafePointer<CChar>?
            guard cdnnl_linear_create(runtime.engine, Int64(shape.rows), Int64(shape.inputs), Int64(shape.outputs),
                                      shape.bias ? 1 : 0, shape.bf16 ? 1 : 0, shape.packed ? 1 : 0, shape.gate,
                                      shape.accumulate ? 1 : 0, &handle, &reorder, &bytes,
                                      &implementation) == dnnl_success,
                  let handle
            else { return nil }
            let name = implementation.map { String(cString: $0) } ?? "unknown"
            guard !name.hasPrefix("ref") else {
                dnnl_primitive_destroy(handle)
                if let reorder { dnnl_primitive_destroy(reorder) }
                return nil
            }
            return Primitive(handle: handle, implementation: name, weightsReorder: reorder.map { Primitive(handle: $0, implementation: "reorder") },
                             weightFloats: (bytes + 3) / 4)
        }
    }

    /// dst = src W^T + bias for a `linear` primitive: src already bfloat16 for a bfloat16 one, the weights in its layout
    /// (`kernelWeights`); false when oneDNN could not run it.
    static func multiply(_ linear: Primitive, source: UnsafeRawPointer, weights: UnsafeRawPointer, bias: UnsafePointer<Float>?,
                         destination: UnsafeMutablePointer<Float>) -> Bool {
        guard let runtime else { return false }
        return execute(linear, in: runtime, [(DNNL_ARG_SRC, source), (DNNL_ARG_WEIGHTS, weights),
                                             (DNNL_ARG_BIAS, bias.map(UnsafeRawPointer.init)), (DNNL_ARG_DST, UnsafeRawPointer(destination))])
    }

    /// The weights of `convolution` in its kernel's layout (and type): `plain` (float32 oihw) reordered into `target`
    /// (weightFloats), or `plain` itself when the kernel takes oihw. nil when the reorder failed.
    static func kernelWeights(of convolution: Primitive, plain: UnsafePointer<Float>,
                              target: UnsafeMutablePointer<Float>) -> UnsafeRawPointer? {
        guard let reorder = convolution.weightsReorder else { return UnsafeRawPointer(plain) }
        guard let runtime, execute(reorder, in: runtime, [(DNNL_ARG_FROM, UnsafeRawPointer(plain)), (DNNL_ARG_TO, UnsafeRawPointer(target))])
        else { return nil }
        return UnsafeRawPointer(target)
    }

    /// dst = conv2d(src, weights) + bias on channels-last buffers (src and weights float32, or bfloat16 for a bf16
    /// primitive), the weights already in the kernel's layout (`kernelWeights`); false when oneDNN could not run it.
    static func convolve(_ convolution: Primitive, source: UnsafeRawPointer, weights: UnsafeRawPointer,
                         bias: UnsafePointer<Float>?, destination: UnsafeMutablePointer<Float>) -> Bool {
        guard let runtime else { return false }
        return execute(convolution, in: runtime, [(DNNL_ARG_SRC, source), (DNNL_ARG_WEIGHTS, weights),
                                                  (DNNL_ARG_BIAS, bias.map(UnsafeRawPointer.init)), (DNNL_ARG_DST, UnsafeRawPointer(destination))])
    }

    /// c[i] = scale * a[i] x b[i] for the batch of `shape`, each operand read or written through its strides; false
    /// when oneDNN could not run it.
    static func multiply(_ shape: MatmulShape, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                         c: UnsafeMutablePointer<Float>) -> Bool {
        guard let runtime, let primitive = primitive(.matmul(shape), in: runtime, make: {
            created { handle, implementation in
                let (a, b, c) = (shape.a.map(Int64.init), shape.b.map(Int64.init), shape.c.map(Int64.init))
                return cdnnl_matmul_create(runtime.engine, Int64(shape.batch), Int64(shape.m), Int64(shape.n), Int64(shape.k),
                                           a, b, c, shape.scale, handle, implementation)
            }
        }) else { return false }
        return execute(primitive, in: runtime, [(DNNL_ARG_SRC, UnsafeRawPointer(a)), (DNNL_ARG_WEIGHTS, UnsafeRawPointer(b)),
                                                (DNNL_ARG_DST, UnsafeRawPointer(c))])
    }

    /// The kernels oneDNN chose for the convolutions run so far ("gemm:jit", "brgconv:avx512_core", ...), and its
    /// version: what `hello` and the benchmarks report.
    public static var description: String {
        guard let runtime else { return "oneDNN unavailable (convolutions on OpenBLAS)" }
        let version = dnnl_version().pointee
        let kernels = Set(runtime.primitives.withLock { $0.values.map(\.implementation) }).sorted()
        let use = precision == .bf16 ? "all convolutions in bfloat16" : backend == .openblas ? "unused: PAINTSD_KERNELS=openblas"
            : backend == .mixed ? "convolutions of \(mixedMinimumPixels) output pixels or more" : "all convolutions"
        return "oneDNN \(version.major).\(version.minor).\(version.patch) (\(use)"
            + (kernels.isEmpty ? "" : "; kernels \(kernels.joined(separator: ", "))") + ")"
    }
}
