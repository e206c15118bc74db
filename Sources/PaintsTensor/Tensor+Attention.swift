// PaintsTensor/Tensor+Attention: multi-head scaled dot-product attention, computed in query chunks.
import Foundation

extension Tensor {
    /// Largest score block, in floats (16 MiB): the 64x64 self-attention's full 8x4096x4096 scores never exist at once.
    public static let maxScoreFloats = 4 << 20

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
        if OneDNN.backend == .onednn, let out = batchedOverHeads(query: q, key: k, value: v, heads: heads, causal: causal) {
            return out
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

    /// The same attention with each product batched over all heads by oneDNN, reading the heads in place from the
    /// [L, H*d] rows; query chunks keep the [H, rows, Lk] scores within `maxScoreFloats`. nil when oneDNN fails.
    private static func batchedOverHeads(query q: Tensor, key k: Tensor, value v: Tensor, heads: Int,
                                         causal: Bool) -> Tensor? {
        let (batch, lq, width) = (q.shape[0], q.shape[1], q.shape[2])
        let lk = k.shape[1], d = width / heads
        let scale = 1 / Float(d).squareRoot()
        let chunk = max(1, min(lq, maxScoreFloats / max(1, heads * lk)))
        var out = Tensor(zeros: q.shape)
        var scores = [Float](repeating: 0, count: heads * chunk * lk)
        let done = q.data.withUnsafeBufferPointer { qp in
            k.data.withUnsafeBufferPointer { kp in
                v.data.withUnsafeBufferPointer { vp in
                    out.data.withUnsafeMutableBufferPointer { op in
                        scores.withUnsafeMutableBufferPointer { sp in
                            for b in 0..<batch {
                                var start = 0
                                while start < lq {
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
