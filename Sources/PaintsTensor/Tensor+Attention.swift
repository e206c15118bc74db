// PaintsTensor/Tensor+Attention: multi-head scaled dot-product attention. By default fused (CTensorKernels'
// pk_attention: scores one block of 48 queries by 256 keys at a time, transposed, online softmax, heads and query
// blocks spread over the cores), and for heads of 256 or more (the VAE's) two products batched over heads on oneDNN;
// one sgemm per head and query chunk serves where oneDNN is missing.
import CTensorKernels
import Foundation

extension Tensor {
    /// Largest score block, in floats (16 MiB): the 64x64 self-attention's full 8x4096x4096 scores never exist at once.
    public static let maxScoreFloats = 4 << 20

    /// How attention is computed: `automatic` (the default: the widest fused kernel, except heads of `wideHead` or
    /// more, which take oneDNN's batched products), `fused`, or `gemm`: the products as matrix multiplications with
    /// the scores of a query chunk written whole (OpenBLAS per head, or oneDNN batched over heads when it is the backend).
    public enum AttentionKernel: Sendable, Equatable {
        case automatic
        /// The fused kernel at a vector width: 16 (AVX-512), 8 (AVX2 + FMA) or 1 (plain C).
        case fused(lanes: Int)
        case gemm
    }

    /// The widest fused kernel this CPU runs.
    public static let widestAttention = AttentionKernel.fused(lanes: Int(pk_attention_lanes()))

    /// Overrides the attention kernel for the current task (tests compare the kernels and widths on one machine).
    @TaskLocal public static var attentionKernel = AttentionKernel.automatic

    /// Query rows per parallel work item of the fused kernel (a multiple of its blocks: 48, 16 or 4 rows by width).
    static let fusedRowsPerItem = 192

    /// The head width from which the default (`automatic`) takes oneDNN's batched products instead: the fused kernel keeps
    /// a block's output rows (48 x d) beside its scores, which past L1 at d = 512 ran the VAE's 4096-token attention at
    /// 121 GFLOP/s against oneDNN's 186-193 on the AVX2 path and 181 against 193 on AVX-512 (`--attention`, vae_64).
    static let wideHead = 256

    /// softmax(Q K^T / sqrt(d)) V per head. q [B, Lq, H*d], k and v [B, Lk, H*d]; returns [B, Lq, H*d].
    /// With `causal`, query i sees keys 0...i only (CLIP's text encoder).
    public static func attention(query q: Tensor, key k: Tensor, value v: Tensor, heads: Int,
                                 causal: Bool = false) throws(TensorError) -> Tensor {
        let flops = q.rank == 3 && k.rank == 3 ? 4 * Double(q.count) * Double(k.shape[1]) : 0
        return try KernelProfile.measure(.attention, flops: flops) { () throws(TensorError) -> Tensor in
            try attended(query: q, key: k, value: v, heads: heads, causal: causal)
        }
    }

    private static func attended(query q: Tensor, key k: Tensor, value v: Tensor, heads: Int,
                                 causal: Bool) throws(TensorError) -> Tensor {
        guard q.rank == 3, k.rank == 3, v.shape == k.shape, q.shape[0] == k.shape[0], q.shape[2] == k.shape[2],
              q.shape[2] % heads == 0
        else { throw .shapeMismatch(operation: "attention", shapes: [q.shape, k.shape, v.shape]) }
        switch attentionKernel {
        case .automatic:
            // Heads of 256 or more (the VAE's one head of 512) run faster as two batched products on oneDNN.
            if q.shape[2] / heads >= wideHead, !causal, OneDNN.backend != .openblas,
               let out = try batchedOverHeads(query: q, key: k, value: v, heads: heads, causal: causal) {
                return out
            }
            if case .fused(let lanes) = widestAttention,
               let out = try fused(query: q, key: k, value: v, heads: heads, causal: causal, lanes: lanes) {
                return out
            }
        case .fused(let lanes):
            if let out = try fused(query: q, key: k, value: v, heads: heads, causal: causal, lanes: lanes) { return out }
        case .gemm:
            if OneDNN.backend == .onednn, let out = try batchedOverHeads(query: q, key: k, value: v, heads: heads, causal: causal) {
                return out
            }
        }
        let (batch, lq, width) = (q.shape[0], q.shape[1], q.shape[2])
        let lk = k.shape[1], d = width / heads
        let scale = 1 / Float(d).squareRoot()
        let chunk = max(1, min(lq, maxScoreFloats / max(1, lk)))
        var out = Tensor(zeros: q.shape)
        var scores = [Float](repeating: 0, count: chunk * lk)
        q.data.withUnsafeBufferPointer { qp in
            k.data.withUnsafeBufferPointer { kp in
                v.data.withUnsafeBufferPointer { vp in
                    out.data.withUnsafeMutableBufferPointer { op in
                        scores.withUnsafeMutableBufferPointer { sp in
                            for b in 0..<batch {
                                for h in 0..<heads {
                                    let qBase = qp.baseAddress! + b * lq * width + h * d
                                    let kBase = kp.baseAddress! + b * lk * width + h * d
                                    let vBase = vp.baseAddress! + b * lk * width + h * d
                                    let oBase = op.baseAddress! + b * lq * width + h * d
                                    var start = 0
                                    while start < lq {
                                        let rows = min(chunk, lq - start)
                                        BLAS.gemm(transposeB: true, m: rows, n: lk, k: d, alpha: scale, a: qBase + start * width,
                                                  lda: width, b: kBase, ldb: width, c: sp.baseAddress!, ldc: lk)
                                        if causal {
                                            for r in 0..<rows where start + r + 1 < lk {
                                                let row = sp.baseAddress! + r * lk
                                                for j in (start + r + 1)..<lk { row[j] = -.infinity }
                                            }
                                        }
                                        let sums = softmaxNumerators(sp.baseAddress!, rows: rows, columns: lk)
                                        let o = oBase + start * width
                                        BLAS.gemm(m: rows, n: d, k: lk, a: sp.baseAddress!, lda: lk, b: vBase, ldb: width,
                                                  c: o, ldc: width)
                                        for r in 0..<rows {
                                            let inv = 1 / sums[r]
                                            for i in 0..<d { o[r * width + i] *= inv }
                                        }
                                        start += rows
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The fused kernel: each head's keys and values packed once (in panels of the kernel's register tile), then
    /// blocks of `fusedRowsPerItem` queries of every head spread over the cores; the scores never exist beyond one
    /// 48x256 block per core. Cancellation is polled between work items. nil when the kernel cannot run (an unsupported
    /// width, or no working memory).
    private static func fused(query q: Tensor, key k: Tensor, value v: Tensor, heads: Int, causal: Bool,
                              lanes: Int) throws(TensorError) -> Tensor? {
        let (batch, lq, width) = (q.shape[0], q.shape[1], q.shape[2])
        let lk = k.shape[1], d = width / heads
        guard lanes == 1 || lanes <= Int(pk_attention_lanes()), lq > 0, lk > 0 else { return nil }
        let scale = 1 / Float(d).squareRoot()
        let packedPerHead = pk_attention_packed_floats(lk, d, Int32(lanes))
        var packed = [Float](repeating: 0, count: batch * heads * packedPerHead)
        var out = Tensor(unfilled: q.shape)  // returned only when every item wrote its rows
        let itemsPerHead = (lq + fusedRowsPerItem - 1) / fusedRowsPerItem
        let check = ComputeCancellation.check
        let outcome = q.data.withUnsafeBufferPointer { qp in
            k.data.withUnsafeBufferPointer { kp in
                v.data.withUnsafeBufferPointer { vp in
                    out.data.withUnsafeMutableBufferPointer { op in
                        packed.withUnsafeMutableBufferPointer { pp in
                            let (qs, ks, vs) = (UnsafeSendablePointer(qp.baseAddress!), UnsafeSendablePointer(kp.baseAddress!),
                                                UnsafeSendablePointer(vp.baseAddress!))
                            let (os, ps) = (UnsafeSendablePointer(op.baseAddress!), UnsafeSendablePointer(pp.baseAddress!))
                            @Sendable func pack(_ bh: Int) {
                                let (b, h) = (bh / heads, bh % heads)
                                pk_attention_pack(ks.pointer + b * lk * width + h * d, vs.pointer + b * lk * width + h * d,
                                                  width, lk, d, Int32(lanes), ps.pointer + bh * packedPerHead)
                            }
                            // With one item per head (short queries: text encoders), each item packs its own head: one
                            // round of work across the cores instead of two.
                            if itemsPerHead > 1 { Parallel.forEach(batch * heads, pack) }
                            // Each item's outcome: 0 done, 1 the kernel could not run, 2 skipped after a cancellation.
                            var outcomes = [UInt8](repeating: 0, count: batch * heads * itemsPerHead)
                            outcomes.withUnsafeMutableBufferPointer { results in
                                let status = UnsafeSendablePointer(results.baseAddress!)
                                Parallel.forEach(results.count) { item in
                                    if let check, check() { return status.pointer[item] = 2 }
                                    let (bh, chunk) = (item / itemsPerHead, item % itemsPerHead)
                                    if itemsPerHead == 1 { pack(bh) }
                                    let (b, h) = (bh / heads, bh % heads)
                                    let start = chunk * fusedRowsPerItem, rows = min(fusedRowsPerItem, lq - start)
                                    let offset = (b * lq + start) * width + h * d
                                    let ok = pk_attention(qs.pointer + offset, width, ps.pointer + bh * packedPerHead, lk, d, scale,
                                                          causal ? start : -1, os.pointer + offset, width, rows, Int32(lanes))
                                    status.pointer[item] = ok == 0 ? 1 : 0
                                }
                            }
                            return outcomes.max() ?? 0
                        }
                    }
                }
            }
        }
        if outcome == 2 { throw .cancelled }
        return outcome == 0 ? out : nil
    }

    /// The same attention with each product batched over all heads by oneDNN, reading the heads in place from the
    /// [L, H*d] rows; query chunks keep the [H, rows, Lk] scores within `maxScoreFloats`, and cancellation is polled
    /// between them. nil when oneDNN fails.
    private static func batchedOverHeads(query q: Tensor, key k: Tensor, value v: Tensor, heads: Int,
                                         causal: Bool) throws(TensorError) -> Tensor? {
        let (batch, lq, width) = (q.shape[0], q.shape[1], q.shape[2])
        let lk = k.shape[1], d = width / heads
        let scale = 1 / Float(d).squareRoot()
        let chunk = max(1, min(lq, maxScoreFloats / max(1, heads * lk)))
        var out = Tensor(zeros: q.shape)
        var scores = [Float](repeating: 0, count: heads * chunk * lk)
        var cancelled = false
        let check = ComputeCancellation.check
        let done = q.data.withUnsafeBufferPointer { qp in
            k.data.withUnsafeBufferPointer { kp in
                v.data.withUnsafeBufferPointer { vp in
                    out.data.withUnsafeMutableBufferPointer { op in
                        scores.withUnsafeMutableBufferPointer { sp in
                            for b in 0..<batch {
                                var start = 0
                                while start < lq {
                                    if let check, check() {
                                        cancelled = true
                                        return false
                                    }
                                    let rows = min(chunk, lq - start)
                                    let qBase = qp.baseAddress! + (b * lq + start) * width, kBase = kp.baseAddress! + b * lk * width
                                    let vBase = vp.baseAddress! + b * lk * width, oBase = op.baseAddress! + (b * lq + start) * width
                                    // scores[h] = scale * Q[h] K[h]^T: Q[h] rows of d at stride width, K[h]^T read by column.
                                    let scoreShape = OneDNN.MatmulShape(batch: heads, m: rows, n: lk, k: d, a: [d, width, 1],
                                                                        b: [d, 1, width], c: [rows * lk, lk, 1], scale: scale)
                                    guard OneDNN.multiply(scoreShape, a: qBase, b: kBase, c: sp.baseAddress!) else { return false }
                                    if causal {
                                        for h in 0..<heads {
                                            for r in 0..<rows where start + r + 1 < lk {
                                                let row = sp.baseAddress! + (h * rows + r) * lk
                                                for j in (start + r + 1)..<lk { row[j] = -.infinity }
                                            }
                                        }
                                    }
                                    let sums = softmaxNumerators(sp.baseAddress!, rows: heads * rows, columns: lk)
                                    // out[h] = scores[h] V[h], written into the rows' h-th d-wide slice.
                                    let valueShape = OneDNN.MatmulShape(batch: heads, m: rows, n: d, k: lk, a: [rows * lk, lk, 1],
                                                                        b: [d, width, 1], c: [d, width, 1], scale: 1)
                                    guard OneDNN.multiply(valueShape, a: sp.baseAddress!, b: vBase, c: oBase) else { return false }
                                    for h in 0..<heads {
                                        for r in 0..<rows {
                                            let inv = 1 / sums[h * rows + r]
                                            let o = oBase + r * width + h * d
                                            for i in 0..<d { o[i] *= inv }
                                        }
                                    }
                                    start += rows
                                }
                            }
                            return true
                        }
                    }
                }
            }
        }
        if cancelled { throw .cancelled }
        return done ? out : nil
    }

    /// Replaces each row by e^(x - max(row)) and returns the row sums: the softmax, divided later (attention divides
    /// the d-wide output row instead of the Lk-wide score row).
    static func softmaxNumerators(_ p: UnsafeMutablePointer<Float>, rows: Int, columns: Int) -> [Float] {
        var sums = [Float](repeating: 0, count: rows)
        sums.withUnsafeMutableBufferPointer { s in
            let base = UnsafeSendablePointer(p), out = UnsafeSendablePointer(s.baseAddress!)
            Parallel.forEach(rows) { r in out.pointer[r] = VectorMath.exponentiateShifted(base.pointer + r * columns, count: columns) }
        }
        return sums
    }
}
