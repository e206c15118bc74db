// PaintsTensor/OneDNN: the oneDNN calls the engines use (2-D convolution, attention's batched matrix products), each
// primitive built once per shape and kept, and which kernels oneDNN picked on this CPU.
//
// Why: oneDNN's convolutions skip the im2col buffer and run its own JIT kernels (brgconv on AVX-512, jit:avx2 on
// AVX2 in its blocked layouts; gemm:jit for the plain NCHW layouts used here so far). Attention's products run batched
// over the heads, read in place from the [tokens, heads * d] rows, where OpenBLAS runs one sgemm per head, K = 40 deep.
// Chosen by `PAINTSD_KERNELS=onednn` (see `backend`); OpenBLAS runs the linear layers always, and takes over when a
// oneDNN primitive cannot be made.
import CDNNL
import Foundation
import Synchronization

public enum OneDNN {
    /// Which library runs convolutions and attention's products.
    public enum Backend: String, Sendable, CaseIterable {
        case onednn, openblas
    }

    private static let backendChoice = Atomic<Int>(ProcessInfo.processInfo.environment["PAINTSD_KERNELS"] == "onednn" ? 0 : 1)

    /// `openblas` unless `PAINTSD_KERNELS=onednn` or a benchmark set it (and oneDNN has an engine). OpenBLAS stays the
    /// default: side by side in one run on the Zen 4 machine, oneDNN on these plain layouts was 0.93-0.98x its speed
    /// (`paints-bench-diffusion --kernels`); its gains need its blocked layouts with weights packed once (issue 15).
    public static var backend: Backend {
        get {
            guard runtime != nil else { return .openblas }
            return backendOverride ?? (backendChoice.load(ordering: .relaxed) == 1 ? .openblas : .onednn)
        }
        set { backendChoice.store(newValue == .openblas ? 1 : 0, ordering: .relaxed) }
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
        case matmul(MatmulShape)
    }

    struct ConvolutionShape: Hashable, Sendable {
        var n, c, h, w, o, kh, kw, stride, paddingH, paddingW: Int
        var bias: Bool
    }

    final class Primitive: @unchecked Sendable {
        // Sendable: oneDNN primitives may be executed from several threads at once.
        let handle: dnnl_primitive_t
        let implementation: String
        /// Floats of scratchpad each execution needs.
        let scratchpadFloats: Int

        init(handle: dnnl_primitive_t, implementation: String) {
            self.handle = handle
            self.implementation = implementation
            scratchpadFloats = (cdnnl_scratchpad_bytes(handle) + 3) / 4
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

    /// The cached primitive of `key`, else `make`'s (which fills in a handle and the kernel's name), kept.
    static func primitive(_ key: PrimitiveKey, in runtime: Runtime,
                          make: (UnsafeMutablePointer<dnnl_primitive_t?>, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> dnnl_status_t) -> Primitive? {
        if let hit = runtime.primitives.withLock({ $0[key] }) { return hit }
        var handle: dnnl_primitive_t?
        var implementation: UnsafePointer<CChar>?
        guard make(&handle, &implementation) == dnnl_success, let handle else { return nil }
        let made = Primitive(handle: handle, implementation: implementation.map { String(cString: $0) } ?? "unknown")
        runtime.primitives.withLock { cache in
            if cache.count >= maxPrimitives { cache.removeAll() }
            cache[key] = made
        }
        return made
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

    /// dst = conv2d(src, weights) + bias on plain float32 buffers (NCHW, OIHW); false when oneDNN could not run it
    /// (the caller falls back to OpenBLAS).
    static func convolve(_ shape: ConvolutionShape, source: UnsafePointer<Float>, weights: UnsafePointer<Float>,
                         bias: UnsafePointer<Float>?, destination: UnsafeMutablePointer<Float>) -> Bool {
        guard let runtime, let primitive = primitive(.convolution(shape), in: runtime, make: { handle, implementation in
            cdnnl_conv2d_create(runtime.engine, Int64(shape.n), Int64(shape.c), Int64(shape.h), Int64(shape.w),
                                Int64(shape.o), Int64(shape.kh), Int64(shape.kw), Int64(shape.stride),
                                Int64(shape.paddingH), Int64(shape.paddingW), shape.bias ? 1 : 0, handle, implementation)
        }) else { return false }
        return execute(primitive, in: runtime, [(DNNL_ARG_SRC, UnsafeRawPointer(source)), (DNNL_ARG_WEIGHTS, UnsafeRawPointer(weights)),
                                                (DNNL_ARG_BIAS, bias.map(UnsafeRawPointer.init)), (DNNL_ARG_DST, UnsafeRawPointer(destination))])
    }

    /// c[i] = scale * a[i] x b[i] for the batch of `shape`, each operand read or written through its strides; false
    /// when oneDNN could not run it.
    static func multiply(_ shape: MatmulShape, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                         c: UnsafeMutablePointer<Float>) -> Bool {
        guard let runtime, let primitive = primitive(.matmul(shape), in: runtime, make: { handle, implementation in
            let (a, b, c) = (shape.a.map(Int64.init), shape.b.map(Int64.init), shape.c.map(Int64.init))
            return cdnnl_matmul_create(runtime.engine, Int64(shape.batch), Int64(shape.m), Int64(shape.n), Int64(shape.k),
                                       a, b, c, shape.scale, handle, implementation)
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
        return "oneDNN \(version.major).\(version.minor).\(version.patch) (\(backend == .onednn ? "convolutions and attention" : "unused: PAINTSD_KERNELS=onednn selects it")"
            + (kernels.isEmpty ? "" : "; kernels \(kernels.joined(separator: ", "))") + ")"
    }
}
