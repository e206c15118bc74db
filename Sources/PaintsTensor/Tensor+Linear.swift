// PaintsTensor/Tensor+Linear: fully connected layers (y = x W^T + b) and layout changes between NCHW and tokens.
import CTensorKernels
import Foundation

extension Tensor {
    /// `x` [..., in] times `weight` [out, in] transposed, plus `bias` [out]: [..., out] (torch.nn.functional.linear).
    /// Then, with `gate` k, y * sigmoid(k y) (SiLU for 1, CLIP's quick GELU for 1.702), and plus `residual` (a tensor
    /// of the output's shape): on oneDNN in the product's epilogue, elsewhere in place after it.
    public func linear(weight: Weight, bias: Tensor?, gate: Float? = nil, adding residual: Tensor? = nil) throws(TensorError) -> Tensor {
        guard let inFeatures = shape.last, weight.rank == 2, weight.shape[1] == inFeatures,
              bias == nil || bias!.shape == [weight.shape[0]],
              residual == nil || residual!.shape == Array(shape.dropLast()) + [weight.shape[0]]
        else { throw .shapeMismatch(operation: "linear", shapes: [shape, weight.shape, bias?.shape ?? [], residual?.shape ?? []]) }
        let outFeatures = weight.shape[0], rows = count / max(1, inFeatures)
        let bf16 = OneDNN.precision == .bf16
        if Self.takesPanels(weight, rows: rows),
           var out = linearOnPanels([(weight, bias)], rows: rows, gate: residual == nil ? gate : nil,
                                    residual: gate == nil ? residual : nil)?.first {
            if let gate, residual != nil { out.applyEpilogue(gate: gate, residual: residual) }   // the gate first
            return out
        }
        if rows > 0, rows <= Self.fewRows, !bf16, weight.dtype != .f32, Self.linearOnOneDNNOverride == nil, let lanes = Self.linearRowsLanes,
           var out = linearRows(weight: weight, bias: bias, rows: rows, lanes: lanes) {
            out.applyEpilogue(gate: gate, residual: residual)
            return out
        }
        if rows > 0, bf16 || Self.linearOnOneDNN(rows: rows, inputs: inFeatures, outputs: outFeatures),
           let out = linearOnOneDNN(weight: weight, bias: bias, rows: rows, bf16: bf16, gate: gate ?? 0, residual: residual) {
            return out
        }
        var out = Tensor(zeros: Array(shape.dropLast()) + [outFeatures])
        if let bias {
            out.data.withUnsafeMutableBufferPointer { y in
                bias.data.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (y.baseAddress! + r * outFeatures).update(from: b.baseAddress!, count: outFeatures) }
                }
            }
        }
        KernelProfile.measure(.linear, flops: 2 * Double(rows) * Double(weight.count)) {
            weight.withFloats { w in
                data.withUnsafeBufferPointer { x in
                    out.data.withUnsafeMutableBufferPointer { y in
                        BLAS.gemm(transposeB: true, m: rows, n: outFeatures, k: inFeatures, a: x.baseAddress!, lda: inFeatures,
                                  b: w, ldb: inFeatures, beta: bias == nil ? 0 : 1, c: y.baseAddress!, ldc: outFeatures)
                    }
                }
            }
        }
        out.applyEpilogue(gate: gate, residual: residual)
        return out
    }

    /// `x` through several layers of its width (attention's q, k and v projections of one input, or k and v of one
    /// context): `linear(weight:bias:)` of each, in order. Where every layer takes the panels, each thread packs x once
    /// for all of them and the layers' panels share one parallel pass; elsewhere one call per layer.
    public func linear(_ layers: [(weight: Weight, bias: Tensor?)]) throws(TensorError) -> [Tensor] {
        guard let inFeatures = shape.last, layers.allSatisfy({ layer in
            layer.weight.rank == 2 && layer.weight.shape[1] == inFeatures && (layer.bias == nil || layer.bias!.shape == [layer.weight.shape[0]])
        }) else { throw .shapeMismatch(operation: "linear", shapes: [shape] + layers.flatMap { [$0.weight.shape, $0.bias?.shape ?? []] }) }
        let rows = count / max(1, inFeatures)
        if layers.count > 1, layers.allSatisfy({ Self.takesPanels($0.weight, rows: rows) }),
           let outs = linearOnPanels(layers, rows: rows, gate: nil, residual: nil) {
            return outs
        }
        var outs: [Tensor] = []
        for layer in layers { outs.append(try linear(weight: layer.weight, bias: layer.bias)) }
        return outs
    }

    /// The epilogue of `linear` on a computed product, in place: the gate, then the residual.
    private mutating func applyEpilogue(gate: Float?, residual: Tensor?) {
        guard gate != nil || residual != nil else { return }
        let n = count
        KernelProfile.measure(gate != nil ? .activation : .elementwise) {
            data.withUnsafeMutableBufferPointer { y in
                let target = UnsafeSendablePointer(y.baseAddress!)
                if let gate {
                    Parallel.forEachChunk(n) { range in VectorMath.sigmoidGate(target.pointer + range.lowerBound, count: range.count, k: gate) }
                }
                residual?.data.withUnsafeBufferPointer { r in
                    let source = UnsafeSendablePointer(r.baseAddress!)
                    Parallel.forEachChunk(n) { range in for i in range { target.pointer[i] += source.pointer[i] } }
                }
            }
        }
    }

    /// Whether a float32 layer of these shapes runs on oneDNN's matmul (brgemm on AVX-512) rather than OpenBLAS:
    /// - few rows (text encoders, the UNet's context projections) of 640 inputs or more: 1.1-2.2x faster on the Zen 4
    ///   machine (77 rows);
    /// - on AVX-512, layers of more rows too (the UNet's and the VAE's token rows): a UNet pass 6% faster on the Zen 4
    ///   machine (batch 1 4.35 -> 4.10 s, batch 2 9.21 -> 8.69 s, a ControlNet step 12.7 -> 11.7 s, alternating in one
    ///   run). That needs GOMP_SPINCOUNT=10000: with libgomp's default, oneDNN's OpenMP workers spun against
    ///   OpenBLAS's threads between calls (9% of a UNet pass in libgomp);
    /// - never on AVX2-only CPUs for those (oneDNN 2.6's jit gemm measured equal to OpenBLAS on linear layers on Zen 3,
    ///   performance.md), nor on PAINTSD_KERNELS=openblas.
    static func linearOnOneDNN(rows: Int, inputs: Int, outputs: Int) -> Bool {
        if let forced = linearOnOneDNNOverride { return forced }
        guard OneDNN.backend != .openblas else { return false }
        return rows <= 128 ? inputs >= 640 : tokenRowsOnOneDNN
    }

    /// Whether layers of more than 128 rows take oneDNN: where the CPU has AVX-512.
    static let tokenRowsOnOneDNN = pk_cpu_has(16) != 0

    /// Every float32 layer on oneDNN (true) or on OpenBLAS (false) for this task (tests and benchmarks).
    @TaskLocal public static var linearOnOneDNNOverride: Bool?

    /// The layer on oneDNN: float32 with the weights read in place, or bfloat16 (PAINTSD_PRECISION=bf16: the input
    /// rounded to bfloat16, the (widened) weights reordered into the kernel's bfloat16 layout on each call), products
    /// summed in float32. nil when oneDNN could not run it.
    private func linearOnOneDNN(weight: Weight, bias: Tensor?, rows: Int, bf16: Bool, gate: Float, residual: Tensor?) -> Tensor? {
        let (inFeatures, outFeatures) = (weight.shape[1], weight.shape[0])
        let layer = OneDNN.LinearShape(rows: rows, inputs: inFeatures, outputs: outFeatures, bias: bias != nil, bf16: bf16,
                                       gate: gate, accumulate: residual != nil)
        // The destination starts as the residual when the epilogue adds to it; else the product overwrites it.
        func destination() -> Tensor { residual ?? Tensor(unfilled: Array(shape.dropLast()) + [outFeatures]) }
        // A weight packed for few rows takes the packed kernel at any row count where the layout is the same: its file
        // pages are released, and reading them would fault them in again.
        if !bf16, Self.packedWeights, weight.isPackable, rows <= 128 || weight.hasPackedCopy {
            var packedLayer = layer
            packedLayer.packed = true
            if let primitive = OneDNN.linear(packedLayer), let packed = weight.packed(for: primitive) {
                var out = destination()
                let done = KernelProfile.measure(.linear, flops: 2 * Double(rows) * Double(weight.count)) {
                    data.withUnsafeBufferPointer { x in out.data.withUnsafeMutableBufferPointer { y in withBiasPointer(bias) {
                        OneDNN.multiply(primitive, source: x.baseAddress!, weights: packed, bias: $0, destination: y.baseAddress!)
                    } } }
                }
                if done { return out }
            }
        }
        guard let primitive = OneDNN.linear(layer) else { return nil }
        var out = destination()
        let done = KernelProfile.measure(.linear, flops: 2 * Double(rows) * Double(weight.count)) {
            data.withUnsafeBufferPointer { x in out.data.withUnsafeMutableBufferPointer { y in
                ScratchBuffers.shared.with(count: bf16 ? (count + 1) / 2 : 1) { halves in
                    let narrowed = UnsafeMutableRawPointer(halves).assumingMemoryBound(to: UInt16.self)
                    if bf16 { VectorMath.narrow(x.baseAddress!, toBFloat16: narrowed, count: count) }
                    let source = bf16 ? UnsafeRawPointer(narrowed) : UnsafeRawPointer(x.baseAddress!)
                    return weight.withFloats { plain in ScratchBuffers.shared.with(count: primitive.weightsReorder == nil ? 1 : primitive.weightFloats) { target in
                        guard let kernelWeights = OneDNN.kernelWeights(of: primitive, plain: plain, target: target) else { return false }
                        return withBiasPointer(bias) {
                            OneDNN.multiply(primitive, source: source, weights: kernelWeights, bias: $0, destination: y.baseAddress!)
                        }
                    } }
                }
            } }
        }
        return done ? out : nil
    }

    /// Whether layers of few rows (up to `fewRows`) whose f16 (and, with `float32OnPanels`, float32) weights are mapped
    /// from a file run on CTensorKernels' panels (pk_linear_panels, the weights packed once, the next block
    /// prefetched): on CPUs with AVX2 + FMA + F16C, AVX-512 ones included. In CLIP on the Zen 4 machine, the fp16 files'
    /// linear layers ran about 8% faster on panels than on the few-rows kernel (AVX-512's path before); on its AVX2
    /// build oneDNN 2.6 and OpenBLAS ran them at about half the FMA limit. A weight that keeps panels takes them at any
    /// row count. PAINTSD_PACKED_WEIGHTS=0 turns both off.
    @TaskLocal public static var linearOnPanels = pk_linear_panels_available() != 0

    /// Whether float32 weights take the panels too (`linearOnPanels`): on CPUs without AVX-512. With AVX-512, oneDNN's
    /// packed matmul ran CLIP's float32 layers about 1% faster in the text encoder (203.5 against 199.1 GFLOP/s, 200.4
    /// against 198.2, alternating in one process), though 0.5% slower alone. Tests set it for a task.
    @TaskLocal public static var float32OnPanels = pk_cpu_has(16) == 0

    /// Whether a layer of `rows` rows on `weight` runs on the panels (`linearOnPanels`): few rows (or a weight that keeps
    /// panels already), f16 (or float32) weights mapped from a file, and no setting that asks for another kernel.
    private static func takesPanels(_ weight: Weight, rows: Int) -> Bool {
        rows > 0 && OneDNN.precision != .bf16 && linearOnPanels && (weight.dtype != .f32 || float32OnPanels)
            && linearOnOneDNNOverride == nil && packedWeights && weight.canKeepPanels && (rows <= fewRows || weight.hasPanels)
    }

    /// Layers of this x on panels, their panels split across the cores together: each chunk packs x for itself, then
    /// runs its share of every layer. `gate`: applied in the kernel; `residual` (one layer only): added in it (the
    /// destination starts as it); not both (the kernel would gate the sum). nil when a weight cannot keep panels or the
    /// CPU lacks the kernel's instructions.
    private func linearOnPanels(_ layers: [(weight: Weight, bias: Tensor?)], rows: Int, gate: Float?,
                                residual: Tensor?) -> [Tensor]? {
        guard pk_linear_panels_available() != 0, gate == nil || residual == nil, residual == nil || layers.count == 1,
              let inFeatures = shape.last else { return nil }
        var kept: [UnsafeSendablePointer<UInt8>] = []
        for layer in layers {
            guard let p = layer.weight.panels() else { return nil }
            kept.append(UnsafeSendablePointer(UnsafeMutableRawPointer(mutating: p).assumingMemoryBound(to: UInt8.self)))
        }
        let panels = kept
        let outFeatures = layers.map { $0.weight.shape[0] }, halves = layers.map { Int32($0.weight.dtype == .f16 ? 1 : 0) }
        let panelCounts = outFeatures.map { ($0 + 15) / 16 }
        let firstPanels = panelCounts.indices.map { panelCounts[..<$0].reduce(0, +) }, total = panelCounts.reduce(0, +)
        let chunks = Parallel.chunkCount(total, minimumChunk: 1), scratchFloats = pk_panel_scratch_floats(rows, inFeatures)
        let accumulate: Int32 = residual == nil ? 0 : 1, gateFactor = gate ?? 0
        // Fills the outputs (all of them valid at once) from the biases' values.
        func run(_ outputs: [UnsafeMutablePointer<Float>], _ biases: [UnsafePointer<Float>?]) {
            ScratchBuffers.shared.with(count: chunks * scratchFloats) { scratch in
                data.withUnsafeBufferPointer { x in
                    let (source, packed) = (UnsafeSendablePointer(UnsafeMutablePointer(mutating: x.baseAddress!)), UnsafeSendablePointer(scratch))
                    let targets = outputs.map { UnsafeSendablePointer($0) }
                    let biasAt = biases.map { $0.map { UnsafeSendablePointer(UnsafeMutablePointer(mutating: $0)) } }
                    Parallel.forEachIndexedChunk(total, minimumChunk: 1) { chunk, range in
                        let own = packed.pointer + chunk * scratchFloats
                        pk_panel_pack_x(source.pointer, rows, inFeatures, own)
                        for i in panels.indices {
                            let p0 = max(range.lowerBound, firstPanels[i]), p1 = min(range.upperBound, firstPanels[i] + panelCounts[i])
                            guard p0 < p1 else { continue }
                            _ = pk_linear_panels(own, rows, inFeatures, panels[i].pointer, halves[i], outFeatures[i], biasAt[i]?.pointer,
                                                 gateFactor, accumulate, targets[i].pointer, p0 - firstPanels[i], p1 - firstPanels[i])
                        }
                    }
                }
            }
        }
        let rowsShape = Array(shape.dropLast())
        var outs: [Tensor] = []
        KernelProfile.measure(.linear, flops: 2 * Double(rows) * Double(layers.map { $0.weight.count }.reduce(0, +))) {
            withPointers(to: layers.map { $0.bias?.data }[...]) { biases in
                if var out = residual {
                    out.data.withUnsafeMutableBufferPointer { run([$0.baseAddress!], biases) }
                    outs = [out]
                } else {
                    outs = Tensor.unfilled(shapes: outFeatures.map { rowsShape + [$0] }[...]) { run($0, biases) }
                }
            }
        }
        return outs
    }

    /// Whether float32 layers of up to 128 rows whose weights are mapped from a file run on weights packed once into
    /// oneDNN's blocked layout, kept in place of the file's pages (`Weight.packed(for:)`): the text encoder's linear
    /// layers 1.2x faster than with the weights reordered on every call. PAINTSD_PACKED_WEIGHTS=0 turns it off.
    @TaskLocal public static var packedWeights = ProcessInfo.processInfo.environment["PAINTSD_PACKED_WEIGHTS"] != "0"

    /// Most rows a layer with f16 or bf16 weights may have to run on CTensorKernels' few-rows kernel: the text
    /// encoders' 77 tokens, the UNet's context projections at batch 2, time embeddings.
    static let fewRows = 160

    /// The few-rows kernel's vector width (16, 8 or 1) for f16 and bf16 weights, or nil for the libraries (the weights
    /// widened on every call, then oneDNN's matmul or OpenBLAS). On the Zen 4 machine it runs the text encoder from
    /// the fp16 files about 1.1x faster than widening + oneDNN; float32 weights stay on oneDNN (packed, faster than
    /// this kernel). Where the panels run (`linearOnPanels`: AVX2, AVX-512 too), f16 file weights take them first, so
    /// it serves bf16 and weights held in memory there. Default: the widest this CPU runs; PAINTSD_LINEAR_ROWS=0 turns
    /// it off. Tests and benchmarks override it for a task.
    @TaskLocal public static var linearRowsLanes: Int? = ProcessInfo.processInfo.environment["PAINTSD_LINEAR_ROWS"] == "0"
        ? nil : Int(pk_linear_rows_lanes())

    /// The layer on CTensorKernels' few-rows kernel (pk_linear_rows): the weights read as stored (f16 and bf16 widened
    /// in registers, no scratch copy), the outputs split across cores in blocks of 4. nil for a width this CPU lacks.
    private func linearRows(weight: Weight, bias: Tensor?, rows: Int, lanes: Int) -> Tensor? {
        let (inFeatures, outFeatures) = (weight.shape[1], weight.shape[0])
        let dtype: Int32
        switch weight.dtype {
        case .f32: dtype = 0
        case .f16: dtype = 1
        case .bf16: dtype = 2
        default: return nil
        }
        guard lanes == 1 || lanes <= Int(pk_linear_rows_lanes()) else { return nil }
        var out = Tensor(zeros: Array(shape.dropLast()) + [outFeatures])
        // Small layers (a time embedding's single row) stay on the calling thread.
        let parts = rows * inFeatures * outFeatures < 1 << 18 ? 1 : Parallel.cores
        let perPart = (outFeatures + 4 * parts - 1) / (4 * parts) * 4
        KernelProfile.measure(.linear, flops: 2 * Double(rows) * Double(weight.count)) {
            data.withUnsafeBufferPointer { x in out.data.withUnsafeMutableBufferPointer { y in withBiasPointer(bias) { b in
                let (source, target) = (UnsafeSendablePointer(x.baseAddress!), UnsafeSendablePointer(y.baseAddress!))
                let w = UnsafeSendablePointer(weight.bytes.base.assumingMemoryBound(to: UInt8.self))
                let biasAt = b.map { UnsafeSendablePointer<Float>($0) }
                Parallel.forEach(parts) { part in
                    let n0 = min(outFeatures, part * perPart), n1 = min(outFeatures, n0 + perPart)
                    _ = pk_linear_rows(source.pointer, rows, inFeatures, w.pointer, dtype, biasAt?.pointer, target.pointer,
                                       outFeatures, n0, n1, Int32(lanes))
                }
            } } }
        }
        return out
    }

    /// A float32 weight held in memory (tests, small models).
    public func linear(weight: Tensor, bias: Tensor?) throws(TensorError) -> Tensor {
        try linear(weight: Weight(weight), bias: bias)
    }

    /// [N, C, H, W] to tokens [N, H*W, C].
    public func tokens() -> Tensor {
        KernelProfile.measure(.layout) { tokensUnprofiled() }
    }

    private func tokensUnprofiled() -> Tensor {
        precondition(rank == 4, "tokens() takes NCHW")
        let (n, c, hw) = (shape[0], shape[1], shape[2] * shape[3])
        var out = Tensor(unfilled: [n, hw, c])
        Self.transposePlanes(data, into: &out.data, batch: n, rows: c, columns: hw)
        return out
    }

    /// Tokens [N, H*W, C] back to [N, C, H, W].
    public func image(height: Int, width: Int) -> Tensor {
        KernelProfile.measure(.layout) { imageUnprofiled(height: height, width: width) }
    }

    private func imageUnprofiled(height: Int, width: Int) -> Tensor {
        precondition(rank == 3 && shape[1] == height * width, "image(height:width:) takes [N, H*W, C]")
        let (n, hw, c) = (shape[0], shape[1], shape[2])
        var out = Tensor(unfilled: [n, c, height, width])
        Self.transposePlanes(data, into: &out.data, batch: n, rows: hw, columns: c)
        return out
    }

    /// Transposes each of `batch` row-major [rows, columns] matrices, in bands of rows spread across cores (8x8 blocks
    /// in AVX registers where the CPU has AVX2).
    static func transposePlanes(_ source: [Float], into target: inout [Float], batch: Int, rows: Int, columns: Int) {
        source.withUnsafeBufferPointer { s in
            target.withUnsafeMutableBufferPointer { t in
                transposePlanes(s.baseAddress!, into: t.baseAddress!, batch: batch, rows: rows, columns: columns)
            }
        }
    }

    static func transposePlanes(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, batch: Int,
                                rows: Int, columns: Int) {
        for b in 0..<batch {
            transpose(source + b * rows * columns, stride: columns, into: target + b * rows * columns, stride: rows,
                      rows: rows, columns: columns)
        }
    }

    /// dst[c * dstStride + r] = src[r * srcStride + c] for a [rows, columns] window, in bands of rows across cores.
    static func transpose(_ source: UnsafePointer<Float>, stride sourceStride: Int, into target: UnsafeMutablePointer<Float>,
                          stride targetStride: Int, rows: Int, columns: Int) {
        let block = max(8, min(64, rows / 8 / 8 * 8))
        let from = UnsafeSendablePointer(source), to = UnsafeSendablePointer(target)
        Parallel.forEach((rows + block - 1) / block) { item in
            pk_transpose_rows(from.pointer, sourceStride, to.pointer, targetStride, columns, item * block, Swift.min(rows, (item + 1) * block))
        }
    }
}

extension Tensor {
    /// New tensors of `shapes`, filled by `fill` with pointers to all of their values at once (it writes every value).
    fileprivate static func unfilled(shapes: ArraySlice<[Int]>, _ pointers: [UnsafeMutablePointer<Float>] = [],
                                     _ fill: ([UnsafeMutablePointer<Float>]) -> Void) -> [Tensor] {
        guard let shape = shapes.first else {
            fill(pointers)
            return []
        }
        var rest: [Tensor] = []
        let count = shape.reduce(1, *)
        let data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            rest = unfilled(shapes: shapes.dropFirst(), pointers + [buffer.baseAddress!], fill)
            initialized = count
        }
        return [Tensor(shape: shape, data: data)] + rest
    }
}

/// Runs `body` with pointers to each array's values (nil for a nil array), all valid at once.
private func withPointers<R>(to arrays: ArraySlice<[Float]?>, _ pointers: [UnsafePointer<Float>?] = [],
                             _ body: ([UnsafePointer<Float>?]) -> R) -> R {
    guard let first = arrays.first else { return body(pointers) }
    guard let array = first else { return withPointers(to: arrays.dropFirst(), pointers + [nil], body) }
    return array.withUnsafeBufferPointer { withPointers(to: arrays.dropFirst(), pointers + [$0.baseAddress], body) }
}
