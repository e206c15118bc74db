// CDNNL: oneDNN (Debian's libdnnl-dev), seen only by PaintsTensor. The C API as is, plus small helpers so Swift
// never builds oneDNN's fixed-size dims arrays or memory objects itself.
#include <oneapi/dnnl/dnnl.h>

/// Primitive attributes: an output scale (1: none), and a scratchpad the caller passes with each execution
/// (`cdnnl_scratchpad_bytes`): Debian's build shares one library scratchpad between primitives, which is unsafe when two
/// threads execute primitives at once.
static inline dnnl_status_t cdnnl_attributes(dnnl_primitive_attr_t *attr, float scale) {
    dnnl_status_t status = dnnl_primitive_attr_create(attr);
    if (status != dnnl_success) return status;
    status = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (status == dnnl_success && scale != 1.0f) status = dnnl_primitive_attr_set_output_scales(*attr, 1, 0, &scale);
    if (status != dnnl_success) dnnl_primitive_attr_destroy(*attr);
    return status;
}

/// Bytes of scratchpad `primitive` wants with each execution (DNNL_ARG_SCRATCHPAD); 0 when none.
static inline size_t cdnnl_scratchpad_bytes(dnnl_primitive_t primitive) {
    const_dnnl_primitive_desc_t pd;
    if (dnnl_primitive_get_primitive_desc(primitive, &pd) != dnnl_success) return 0;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/// Makes the primitive of `desc` (an operation descriptor) with user scratchpads and `post_ops` (NULL: none), and the
/// reorder from `plain_weights` into the weight layout its kernel chose (`*weights_reorder`; NULL when that is
/// `plain_weights`), whose size goes to `*weight_bytes`; `*implementation` names the kernel.
static inline dnnl_status_t cdnnl_create_with_weights(dnnl_engine_t engine, const void *desc,
                                                      const dnnl_memory_desc_t *plain_weights, const_dnnl_post_ops_t post_ops,
                                                      dnnl_primitive_t *primitive, dnnl_primitive_t *weights_reorder,
                                                      size_t *weight_bytes, const char **implementation) {
    *primitive = NULL;
    *weights_reorder = NULL;
    dnnl_primitive_attr_t attr, with_post_ops;
    dnnl_status_t status;
    if ((status = cdnnl_attributes(&attr, 1.0f)) != dnnl_success) return status;
    if ((status = cdnnl_attributes(&with_post_ops, 1.0f)) != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return status;
    }
    if (post_ops) status = dnnl_primitive_attr_set_post_ops(with_post_ops, post_ops);
    dnnl_primitive_desc_t pd;
    if (status == dnnl_success) status = dnnl_primitive_desc_create(&pd, desc, with_post_ops, engine, NULL);
    dnnl_primitive_attr_destroy(with_post_ops);
    if (status != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return status;
    }
    const dnnl_memory_desc_t *chosen = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    *weight_bytes = dnnl_memory_desc_get_size(chosen);
    if (!dnnl_memory_desc_equal(chosen, plain_weights)) {
        dnnl_primitive_desc_t reorder_pd;
        status = dnnl_reorder_primitive_desc_create(&reorder_pd, plain_weights, engine, chosen, engine, attr);
        if (status == dnnl_success) {
            status = dnnl_primitive_create(weights_reorder, reorder_pd);
            dnnl_primitive_desc_destroy(reorder_pd);
        }
    }
    dnnl_primitive_attr_destroy(attr);
    if (status == dnnl_success) status = dnnl_primitive_create(primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    if (status != dnnl_success) {
        if (*weights_reorder) dnnl_primitive_destroy(*weights_reorder);
        *weights_reorder = NULL;
        return status;
    }
    const_dnnl_primitive_desc_t own;
    if (dnnl_primitive_get_primitive_desc(*primitive, &own) != dnnl_success
        || dnnl_primitive_desc_query(own, dnnl_query_impl_info_str, 0, (void *)implementation) != dnnl_success)
        *implementation = "unknown";
    return dnnl_success;
}

/// A forward-inference 2-D convolution on channels-last tensors: src [n, h, w, c] (nhwc; float32, or bfloat16 with
/// `bf16`, the weights then bfloat16 too), dst [n, oh, ow, o] (nhwc, float32), bias [o] (float32) when `has_bias`; `pad_top` and `pad_bottom` rows (a band of a taller image pads only its own ends),
/// `padding_w` columns left and right. The weights are in the layout oneDNN's fastest kernel wants (blocked, on
/// AVX-512 and AVX2): `*weights_reorder` makes it from plain float32 oihw [o, c, kh, kw] (NULL when oihw is that layout), into
/// `*weight_bytes` bytes. Run both with `cdnnl_execute`.
static inline dnnl_status_t cdnnl_conv2d_nhwc_create(dnnl_engine_t engine, int64_t n, int64_t c, int64_t h, int64_t w,
                                                     int64_t o, int64_t kh, int64_t kw, int64_t stride, int64_t pad_top,
                                                     int64_t pad_bottom, int64_t padding_w, int has_bias, int bf16,
                                                     dnnl_primitive_t *primitive, dnnl_primitive_t *weights_reorder,
                                                     size_t *weight_bytes, const char **implementation) {
    int64_t oh = (h + pad_top + pad_bottom - kh) / stride + 1, ow = (w + 2 * padding_w - kw) / stride + 1;
    dnnl_dims_t src_dims = {n, c, h, w}, weight_dims = {o, c, kh, kw}, bias_dims = {o}, dst_dims = {n, o, oh, ow};
    dnnl_dims_t strides = {stride, stride}, pad_l = {pad_top, padding_w}, pad_r = {pad_bottom, padding_w};
    dnnl_memory_desc_t src, weights, plain_weights, bias, dst;
    dnnl_status_t status;
    *primitive = NULL;
    *weights_reorder = NULL;
    dnnl_data_type_t operands = bf16 ? dnnl_bf16 : dnnl_f32;
    if ((status = dnnl_memory_desc_init_by_tag(&src, 4, src_dims, operands, dnnl_nhwc)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&weights, 4, weight_dims, operands, dnnl_format_tag_any)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&plain_weights, 4, weight_dims, dnnl_f32, dnnl_oihw)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&bias, 1, bias_dims, dnnl_f32, dnnl_x)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&dst, 4, dst_dims, dnnl_f32, dnnl_nhwc)) != dnnl_success) return status;
    dnnl_convolution_desc_t desc;
    status = dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_direct, &src, &weights,
                                                has_bias ? &bias : NULL, &dst, strides, pad_l, pad_r);
    if (status != dnnl_success) return status;
    return cdnnl_create_with_weights(engine, &desc, &plain_weights, NULL, primitive, weights_reorder, weight_bytes, implementation);
}

/// A reorder between plain NCHW rows read or written in place through strides (elements between images and between
/// channels; rows `w` apart, columns adjacent) and the layout `blocked` describes.
static inline dnnl_status_t cdnnl_strided_reorder_create(dnnl_engine_t engine, const dnnl_memory_desc_t *blocked,
                                                         int64_t image_stride, int64_t channel_stride, int to_blocked,
                                                         dnnl_primitive_t *reorder) {
    dnnl_memory_desc_t plain;
    dnnl_dims_t strides = {image_stride, channel_stride, blocked->dims[3], 1};
    dnnl_status_t status = dnnl_memory_desc_init_by_strides(&plain, 4, blocked->dims, dnnl_f32, strides);
    if (status != dnnl_success) return status;
    dnnl_primitive_desc_t pd;
    status = to_blocked ? dnnl_reorder_primitive_desc_create(&pd, &plain, engine, blocked, engine, NULL)
                        : dnnl_reorder_primitive_desc_create(&pd, blocked, engine, &plain, engine, NULL);
    if (status != dnnl_success) return status;
    status = dnnl_primitive_create(reorder, pd);
    dnnl_primitive_desc_destroy(pd);
    return status;
}

/// A forward-inference float32 3x3 convolution, stride 1, by oneDNN's Winograd F(4x4, 3x3) kernel (AVX-512 only; the
/// status is an error elsewhere): `pad_top` and `pad_bottom` rows, `padding_w` columns. Its source and destination are
/// oneDNN's blocked layout (nChw16c, `*src_bytes` and `*dst_bytes`), made from and returned to plain NCHW in place by
/// `*src_reorder` (source image and channel strides `src_image`, `src_channel`) and `*dst_reorder` (`dst_image`,
/// `dst_channel`); its weights by `*weights_reorder` from plain float32 oihw, into `*weight_bytes` (their layout can
/// depend on the shape: compare with `cdnnl_same_weights`).
static inline dnnl_status_t cdnnl_conv2d_winograd_create(dnnl_engine_t engine, int64_t n, int64_t c, int64_t h, int64_t w,
                                                         int64_t o, int64_t pad_top, int64_t pad_bottom, int64_t padding_w,
                                                         int has_bias, int64_t src_image, int64_t src_channel,
                                                         int64_t dst_image, int64_t dst_channel, dnnl_primitive_t *primitive,
                                                         dnnl_primitive_t *weights_reorder, size_t *weight_bytes,
                                                         dnnl_primitive_t *src_reorder, size_t *src_bytes,
                                                         dnnl_primitive_t *dst_reorder, size_t *dst_bytes,
                                                         const char **implementation) {
    int64_t oh = h + pad_top + pad_bottom - 2, ow = w + 2 * padding_w - 2;
    dnnl_dims_t src_dims = {n, c, h, w}, weight_dims = {o, c, 3, 3}, bias_dims = {o}, dst_dims = {n, o, oh, ow};
    dnnl_dims_t strides = {1, 1}, pad_l = {pad_top, padding_w}, pad_r = {pad_bottom, padding_w};
    dnnl_memory_desc_t src, weights, plain_weights, bias, dst;
    dnnl_status_t status;
    *primitive = *weights_reorder = *src_reorder = *dst_reorder = NULL;
    if ((status = dnnl_memory_desc_init_by_tag(&src, 4, src_dims, dnnl_f32, dnnl_format_tag_any)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&weights, 4, weight_dims, dnnl_f32, dnnl_format_tag_any)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&plain_weights, 4, weight_dims, dnnl_f32, dnnl_oihw)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&bias, 1, bias_dims, dnnl_f32, dnnl_x)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&dst, 4, dst_dims, dnnl_f32, dnnl_format_tag_any)) != dnnl_success) return status;
    dnnl_convolution_desc_t desc;
    status = dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_convolution_winograd, &src, &weights,
                                                has_bias ? &bias : NULL, &dst, strides, pad_l, pad_r);
    if (status != dnnl_success) return status;
    status = cdnnl_create_with_weights(engine, &desc, &plain_weights, NULL, primitive, weights_reorder, weight_bytes, implementation);
    if (status != dnnl_success) return status;
    const_dnnl_primitive_desc_t pd;
    status = dnnl_primitive_get_primitive_desc(*primitive, &pd);
    const dnnl_memory_desc_t *blocked_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *blocked_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    if (status == dnnl_success) status = cdnnl_strided_reorder_create(engine, blocked_src, src_image, src_channel, 1, src_reorder);
    if (status == dnnl_success) status = cdnnl_strided_reorder_create(engine, blocked_dst, dst_image, dst_channel, 0, dst_reorder);
    if (status != dnnl_success) {
        dnnl_primitive_destroy(*primitive);
        if (*weights_reorder) dnnl_primitive_destroy(*weights_reorder);
        if (*src_reorder) dnnl_primitive_destroy(*src_reorder);
        *primitive = *weights_reorder = *src_reorder = NULL;
        return status;
    }
    *src_bytes = dnnl_memory_desc_get_size(blocked_src);
    *dst_bytes = dnnl_memory_desc_get_size(blocked_dst);
    return dnnl_success;
}

/// Whether two convolutions take their weights in the same layout (one reorder serves both).
static inline int cdnnl_same_weights(dnnl_primitive_t a, dnnl_primitive_t b) {
    const_dnnl_primitive_desc_t pa, pb;
    if (dnnl_primitive_get_primitive_desc(a, &pa) != dnnl_success || dnnl_primitive_get_primitive_desc(b, &pb) != dnnl_success) return 0;
    return dnnl_memory_desc_equal(dnnl_primitive_desc_query_md(pa, dnnl_query_weights_md, 0),
                                  dnnl_primitive_desc_query_md(pb, dnnl_query_weights_md, 0));
}

/// A batched float32 matrix product c[i] = scale * a[i] x b[i] for i in 0..<batch: a is [m, k], b [k, n], c [m, n],
/// each read and written in place through its strides in elements (batch, row, column), as attention reads its heads
/// out of [tokens, heads * d] rows.
static inline dnnl_status_t cdnnl_matmul_create(dnnl_engine_t engine, int64_t batch, int64_t m, int64_t n, int64_t k,
                                                const int64_t *a_strides, const int64_t *b_strides,
                                                const int64_t *c_strides, float scale, dnnl_primitive_t *primitive,
                                                const char **implementation) {
    dnnl_dims_t a_dims = {batch, m, k}, b_dims = {batch, k, n}, c_dims = {batch, m, n};
    dnnl_dims_t as = {a_strides[0], a_strides[1], a_strides[2]}, bs = {b_strides[0], b_strides[1], b_strides[2]},
                cs = {c_strides[0], c_strides[1], c_strides[2]};
    dnnl_memory_desc_t a, b, c;
    dnnl_status_t status;
    if ((status = dnnl_memory_desc_init_by_strides(&a, 3, a_dims, dnnl_f32, as)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_strides(&b, 3, b_dims, dnnl_f32, bs)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_strides(&c, 3, c_dims, dnnl_f32, cs)) != dnnl_success) return status;
    dnnl_matmul_desc_t desc;
    if ((status = dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c)) != dnnl_success) return status;
    dnnl_primitive_attr_t attr;
    if ((status = cdnnl_attributes(&attr, scale)) != dnnl_success) return status;
    dnnl_primitive_desc_t pd;
    status = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (status != dnnl_success) return status;
    status = dnnl_primitive_create(primitive, pd);
    dnnl_primitive_desc_destroy(pd);
    if (status != dnnl_success) return status;
    const_dnnl_primitive_desc_t own;
    if (dnnl_primitive_get_primitive_desc(*primitive, &own) != dnnl_success
        || dnnl_primitive_desc_query(own, dnnl_query_impl_info_str, 0, (void *)implementation) != dnnl_success)
        *implementation = "unknown";
    return dnnl_success;
}

/// A fully connected layer: dst [rows, out] (float32) = src [rows, in] (row-major; bfloat16 with `bf16`, else float32)
/// x W^T + bias (float32, when `has_bias`), the products summed in float32. In float32 the weights are read as they are
/// stored, W [out, in] row-major (`*weights_reorder` NULL), unless `packed`: then, as in bfloat16, in the layout
/// oneDNN's kernel wants (blocked; bfloat16 for `bf16`): `*weights_reorder` makes it from plain float32 W, into
/// `*weight_bytes` (NULL when the kernel takes W as stored). Then, with `gate` != 0, y * sigmoid(gate * y) (oneDNN's
/// swish: SiLU for 1, quick GELU for 1.702), and with `accumulate`, the sum added to what dst holds (a residual).
static inline dnnl_status_t cdnnl_linear_create(dnnl_engine_t engine, int64_t rows, int64_t in, int64_t out, int has_bias,
                                                int bf16, int packed, float gate, int accumulate,
                                                dnnl_primitive_t *primitive, dnnl_primitive_t *weights_reorder,
                                                size_t *weight_bytes, const char **implementation) {
    dnnl_dims_t a_dims = {rows, in}, b_dims = {in, out}, bias_dims = {1, out}, c_dims = {rows, out};
    dnnl_memory_desc_t a, b, plain_b, bias, c;
    dnnl_status_t status;
    *primitive = NULL;
    *weights_reorder = NULL;
    if ((status = dnnl_memory_desc_init_by_tag(&a, 2, a_dims, bf16 ? dnnl_bf16 : dnnl_f32, dnnl_ab)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&plain_b, 2, b_dims, dnnl_f32, dnnl_ba)) != dnnl_success) return status;
    if (bf16 && (status = dnnl_memory_desc_init_by_tag(&b, 2, b_dims, dnnl_bf16, dnnl_format_tag_any)) != dnnl_success) return status;
    if (!bf16 && packed && (status = dnnl_memory_desc_init_by_tag(&b, 2, b_dims, dnnl_f32, dnnl_format_tag_any)) != dnnl_success) return status;
    if (!bf16 && !packed) b = plain_b;
    if ((status = dnnl_memory_desc_init_by_tag(&bias, 2, bias_dims, dnnl_f32, dnnl_ab)) != dnnl_success) return status;
    if ((status = dnnl_memory_desc_init_by_tag(&c, 2, c_dims, dnnl_f32, dnnl_ab)) != dnnl_success) return status;
    dnnl_matmul_desc_t desc;
    if ((status = dnnl_matmul_desc_init(&desc, &a, &b, has_bias ? &bias : NULL, &c)) != dnnl_success) return status;
    dnnl_post_ops_t post_ops = NULL;
    if (gate != 0 || accumulate) {
        if ((status = dnnl_post_ops_create(&post_ops)) != dnnl_success) return status;
        if (gate != 0) status = dnnl_post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_swish, gate, 0.0f);
        if (status == dnnl_success && accumulate) status = dnnl_post_ops_append_sum(post_ops, 1.0f);
    }
    if (status == dnnl_success)
        status = cdnnl_create_with_weights(engine, &desc, &plain_b, post_ops, primitive, weights_reorder, weight_bytes, implementation);
    if (post_ops) dnnl_post_ops_destroy(post_ops);
    return status;
}

/// Runs `primitive` with `count` arguments (`names[i]`: DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST,
/// DNNL_ARG_SCRATCHPAD; a NULL handle is left out) on the layouts it was made for, and waits for it.
static inline dnnl_status_t cdnnl_execute(dnnl_primitive_t primitive, dnnl_engine_t engine, dnnl_stream_t stream,
                                          int count, const int *names, void *const *handles) {
    const_dnnl_primitive_desc_t pd;
    dnnl_status_t status = dnnl_primitive_get_primitive_desc(primitive, &pd);
    if (status != dnnl_success) return status;
    dnnl_exec_arg_t args[8];
    int made = 0;
    for (int i = 0; i < count && i < 8 && status == dnnl_success; i++) {
        if (handles[i] == NULL) continue;
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, names[i]);
        dnnl_memory_t memory;
        status = dnnl_memory_create(&memory, md, engine, handles[i]);
        if (status == dnnl_success) args[made++] = (dnnl_exec_arg_t){names[i], memory};
    }
    if (status == dnnl_success) status = dnnl_primitive_execute(primitive, stream, made, args);
    if (status == dnnl_success) status = dnnl_stream_wait(stream);
    for (int i = 0; i < made; i++) dnnl_memory_destroy(args[i].memory);
    return status;
}
