#!/usr/bin/env python3
"""Writes the small seeds of the paints-fuzz corpus (Tests/Fixtures/fuzz/<target>/), with the standard library only.

Larger seeds (the tiny fixture models, the protocol's example requests) are named in each target's seeds.json and
read from where they are. Run from the repository root; the output is committed, so this runs only to change it.
"""
import json
import os
import struct
import zlib

ROOT = os.path.join("Tests", "Fixtures", "fuzz")


def write(path, data):
    path = os.path.join(ROOT, path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def safetensors(entries, metadata=None):
    """entries: name -> (dtype, shape, bytes). Data in name order, header padded to 8 bytes."""
    header, body = {}, b""
    for name in sorted(entries):
        dtype, shape, data = entries[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, sort_keys=True).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


# --- safetensors: every dtype, metadata, an empty tensor, a scalar.
write("safetensors/dtypes.safetensors", safetensors({
    "a.f32": ("F32", [2, 3], f32(*range(6))),
    "b.f16": ("F16", [4], struct.pack("<4e", 1, -2, 0.5, 65504)),
    "c.bf16": ("BF16", [2], struct.pack("<2H", 0x3F80, 0xC000)),
    "d.f64": ("F64", [1, 2], struct.pack("<2d", 1.5, -3)),
    "e.i64": ("I64", [3], struct.pack("<3q", 0, 49406, -1)),
    "f.i32": ("I32", [2], struct.pack("<2i", 7, -7)),
    "g.u8": ("U8", [3], b"\x00\x7f\xff"),
    "h.bool": ("BOOL", [2], b"\x00\x01"),
    "i.empty": ("F32", [0, 4], b""),
    "j.scalar": ("F32", [], f32(3.25)),
}, metadata={"format": "pt", "note": "fuzz seed"}))
write("safetensors/empty-header.safetensors", safetensors({}))

# --- single-file: the reproductions (each once killed the daemon on any sd colorize).
UNET = "model.diffusion_model."
write("single-file/output-blocks-bare.safetensors", safetensors({UNET + "output_blocks.": ("F32", [1], f32(0))}))
write("single-file/attn2-1d.safetensors", safetensors({
    UNET + "input_blocks.1.0.out_layers.3.weight": ("F32", [4, 4, 1, 1], f32(*[0] * 16)),
    UNET + "output_blocks.0.0.x": ("F32", [1], f32(0)),
    UNET + "output_blocks.1.0.x": ("F32", [1], f32(0)),
    UNET + "input_blocks.1.1.attn2.to_k.weight": ("F32", [4], f32(0, 0, 0, 0)),
}))
write("single-file/out-layers-scalar.safetensors", safetensors({
    UNET + "input_blocks.1.0.out_layers.3.weight": ("F32", [], f32(0)),
    UNET + "output_blocks.0.0.x": ("F32", [1], f32(0)),
    UNET + "output_blocks.1.0.x": ("F32", [1], f32(0)),
    UNET + "input_blocks.1.1.attn2.to_k.weight": ("F32", [4, 4], f32(*[0] * 16)),
}))
write("single-file/vae-down-bare.safetensors", safetensors({
    UNET + "input_blocks.1.0.out_layers.3.weight": ("F32", [4, 4, 1, 1], f32(*[0] * 16)),
    UNET + "output_blocks.0.0.x": ("F32", [1], f32(0)),
    UNET + "output_blocks.1.0.x": ("F32", [1], f32(0)),
    UNET + "input_blocks.1.1.attn2.to_k.weight": ("F32", [4, 4], f32(*[0] * 16)),
    "first_stage_model.encoder.down.": ("F32", [1], f32(0)),
}))


# --- png: the classes PngSuite covers, tiny.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, depth, colour, rows, interlace=0, extra=()):
    """rows: raw scanlines without filter bytes (already packed for `depth`)."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    bits = channels * depth
    if interlace:
        # Adam7: each pass's pixels, rows packed as for a plain image of the pass's size.
        def pixel(row, x):  # whole bytes per pixel only (depth >= 8) in the seeds below
            step = bits // 8
            return row[x * step:(x + 1) * step]
        raw = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            for y in range(y0, height, dy):
                line = b"".join(pixel(rows[y], x) for x in range(x0, width, dx))
                if line:
                    raw += b"\x00" + line
    else:
        raw = b"".join(b"\x00" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(chunk(k, d) for k, d in extra) + \
        chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


write("png/rgba8.png", png(4, 3, 8, 6, [b"".join(bytes([x * 60, y * 80, 128, 255 - x * 40]) for x in range(4)) for y in range(3)]))
write("png/rgb8-gama.png", png(3, 3, 8, 2, [bytes([128] * 9)] * 3, extra=[(b"gAMA", struct.pack(">I", 100000))]))
write("png/grey1.png", png(9, 2, 1, 0, [b"\xaa\x80", b"\x55\x00"]))
write("png/grey4.png", png(3, 2, 4, 0, [b"\x0f\xa0", b"\xf0\x50"]))
write("png/grey16.png", png(2, 2, 16, 0, [b"\x80\x80\x00\x00", b"\xff\xff\x12\x34"]))
write("png/grey-alpha8.png", png(2, 2, 8, 4, [b"\x10\x80\x20\xff", b"\x30\x00\x40\x40"]))
write("png/palette-trns.png", png(4, 2, 2, 3, [b"\x1b", b"\xe4"],
                                  extra=[(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0])), (b"tRNS", b"\x00\x80")]))
write("png/rgb16-interlaced.png", png(5, 5, 16, 2, [b"".join(struct.pack(">3H", 65535, 65535 - 4000 * x, 257 * y) for x in range(5))
                                                    for y in range(5)], interlace=1))
write("png/srgb-iccp.png", png(2, 1, 8, 2, [b"\x01\x02\x03\x04\x05\x06"],
                               extra=[(b"sRGB", b"\x00"), (b"iCCP", b"x\x00\x00" + zlib.compress(b"\x00" * 32))]))

# --- header: requests the protocol examples do not show.
for name, request in {
    "undo-preview": {"id": "u1", "method": "undo.preview", "stream": True,
                     "params": {"image": {"frame": 1, "encoding": "png"}, "steps": [400, 800], "count": 2, "engine": "builtin",
                                "options": {"quality": "draft"}}},
    "tag": {"id": "t1", "method": "tag", "params": {"image": {"path": "/tmp/x.png"}, "threshold": 0.35, "exclude": ["a_b"]}},
    "colorize-options": {"id": "c9", "method": "colorize", "on_disconnect": "keep",
                         "params": {"sketch": {"frame": 1, "encoding": "png"}, "engine": "sd", "seed": 12345678901,
                                    "prompt": "a cat, \u00e9t\u00e9 \\(red\\)", "options": {"steps": 4, "strength": 0.5, "model": "b_other"}}},
    "shutdown": {"id": "s", "method": "shutdown"},
}.items():
    write("header/%s.json" % name, json.dumps(request, sort_keys=True).encode())

# --- seeds.json: larger seeds read in place.
write("safetensors/seeds.json", json.dumps({"files": ["Tests/Fixtures/diffusion/dtypes.safetensors",
                                                      "Tests/Fixtures/diffusion/clip-sd1/io.safetensors"]}, indent=1).encode() + b"\n")
write("single-file/seeds.json", json.dumps({"files": ["Tests/Fixtures/diffusion/single-file-sd1.safetensors",
                                                      "Tests/Fixtures/diffusion/single-file-openclip.safetensors"]}, indent=1).encode() + b"\n")
write("png/seeds.json", json.dumps({"files": ["Examples/art/umbrella-hints.png"]}, indent=1).encode() + b"\n")
write("header/seeds.json", json.dumps({"files": sorted("Protocol/examples/" + f for f in os.listdir("Protocol/examples")
                                                       if f.startswith("request-"))}, indent=1).encode() + b"\n")

# --- folder: each model kind's files (one of them replaced by a mutation per input).
D, U, T = "Tests/Fixtures/diffusion/", "Tests/Fixtures/paints-undo/model/", "Tests/Fixtures/tagger/"
write("folder/sd/model_index.json", b'{"_class_name": "StableDiffusionPipeline"}\n')
write("folder/sd/scheduler/scheduler_config.json",
      b'{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "num_train_timesteps": 1000}\n')
models = {
    "sd": {
        "model_index.json": "Tests/Fixtures/fuzz/folder/sd/model_index.json",
        "scheduler/scheduler_config.json": "Tests/Fixtures/fuzz/folder/sd/scheduler/scheduler_config.json",
        "unet/config.json": D + "unet-sd1/config.json",
        "unet/diffusion_pytorch_model.safetensors": D + "unet-sd1/diffusion_pytorch_model.safetensors",
        "vae/config.json": D + "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors": D + "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json": D + "clip-sd1/config.json",
        "text_encoder/model.safetensors": D + "clip-sd1/model.safetensors",
        "tokenizer/vocab.json": D + "tokenizer/vocab.json",
        "tokenizer/merges.txt": D + "tokenizer/merges.txt",
    },
    "undo": {p: U + p for p in ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json",
                                "vae/diffusion_pytorch_model.safetensors", "text_encoder/config.json",
                                "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt"]},
    "tagger-vit": {p: T + "vit/" + p for p in ["config.json", "model.safetensors", "selected_tags.csv"]},
    "tagger-convnext": {p: T + "convnext/" + p for p in ["config.json", "model.safetensors", "selected_tags.csv"]},
}
write("folder/models.json", json.dumps(models, indent=1, sort_keys=True).encode() + b"\n")
