#!/usr/bin/env python3
"""Builds the PNG decoder conformance fixtures (Tests/PaintsRasterTests/PNGConformanceTests.swift).

Run from the repository root (needs pypng, pure Python: `pip install pypng`):
    python3 Tests/Fixtures/png/generate.py

PNGs are written with pypng (or chunk by chunk with zlib where pypng cannot), covering the classes PngSuite covers:
grey 1/2/4/8/16 bit, RGB 8/16, palette 1/2/4/8 with and without tRNS, grey+alpha and RGBA 8/16, Adam7 interlaced
variants (16-bit RGB included), gAMA 1.0 and 0.45455, sRGB, iCCP and cHRM chunks, tRNS colour keys on grey and RGB,
odd sizes, IDAT split over several chunks, and the tolerated oddities (no IEND, bytes after IEND, an ancillary chunk
with a bad CRC). For each valid file, `<name>.rgba` holds the expected decode: 8-bit straight RGBA, row-major, from
pypng's own decoder (no libpng involved), with no colour management (gAMA/sRGB/iCCP/cHRM ignored). Samples of other
bit depths are scaled to 8 bits as round(v * 255 / (2^depth - 1)); for 16-bit files the decoder may differ by 1
(libpng's png_set_scale_16), which manifest.json records as "tolerance": 1.

The corrupt files must all fail to decode (RasterError.decodeFailed; the daemon's image_decode_failed).
Everything is seeded and deterministic; the outputs are committed.
"""
import io
import json
import os
import random
import struct
import zlib

import png  # pypng

HERE = os.path.dirname(os.path.abspath(__file__))
SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---- chunk-level helpers ----

def chunk(kind, body, crc=None):
    if crc is None:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def chunks_of(data):
    """[(kind, body)] of a PNG, signature checked."""
    assert data[:8] == SIGNATURE
    out, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i:i + 4])
        kind = data[i + 4:i + 8]
        out.append((kind, data[i + 8:i + 8 + length]))
        i += 12 + length
    return out


def assemble(chunks):
    return SIGNATURE + b"".join(chunk(k, b) for k, b in chunks)


def ihdr(width, height, depth, colour, interlace=0, compression=0, filt=0):
    return struct.pack(">IIBBBBB", width, height, depth, colour, compression, filt, interlace)


def insert_before_idat(data, extra):
    """The PNG with the (kind, body) chunks of `extra` placed right after IHDR (so before PLTE and IDAT)."""
    cs = chunks_of(data)
    return assemble(cs[:1] + extra + cs[1:])


# ---- images ----

rng = random.Random(20240610)


def samples(width, height, planes, depth, special=()):
    """Rows of random samples of `depth` bits; the first samples are `special` values (edge cases of scaling)."""
    top = (1 << depth) - 1
    flat = [rng.randint(0, top) for _ in range(width * height * planes)]
    for i, v in enumerate(special[:len(flat)]):
        flat[i] = v
    n = width * planes
    return [flat[r * n:(r + 1) * n] for r in range(height)]


SPECIAL16 = [0, 65535, 0x8080, 0x807F, 0x8081, 0x0080, 0x007F, 0x0081, 0xFF7F, 0xFF80, 0x7FFF, 0x8000, 257, 256, 258,
             128, 129, 127, 32767, 32768, 32896, 32895, 65534, 1]


def write(width, height, rows, **kw):
    buf = io.BytesIO()
    png.Writer(width, height, **kw).write(buf, rows)
    return buf.getvalue()


def palette(depth, alpha_entries):
    """A random palette of 2^depth entries, the first `alpha_entries` with alpha (pypng writes a tRNS that short)."""
    entries = []
    for i in range(1 << depth):
        rgb = (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
        entries.append(rgb + (rng.choice([0, 255, rng.randint(1, 254)]),) if i < alpha_entries else rgb)
    return entries


def grey(depth, width=16, height=16, interlace=False, **kw):
    special = SPECIAL16 if depth == 16 else [0, (1 << depth) - 1]
    return write(width, height, samples(width, height, 1, depth, special), greyscale=True, bitdepth=depth,
                 interlace=interlace, **kw)


def grey_alpha(depth, width=16, height=16, interlace=False):
    special = SPECIAL16 if depth == 16 else [0, 255, 128, 0, 255, 255]
    return write(width, height, samples(width, height, 2, depth, special), greyscale=True, alpha=True, bitdepth=depth,
                 interlace=interlace)


def rgb(depth, width=16, height=16, interlace=False, **kw):
    special = [65535, 65535, 0] + SPECIAL16 if depth == 16 else [255, 255, 0, 0, 128, 1]
    return write(width, height, samples(width, height, 3, depth, special), greyscale=False, bitdepth=depth,
                 interlace=interlace, **kw)


def rgba(depth, width=16, height=16, interlace=False):
    special = SPECIAL16 if depth == 16 else [255, 0, 0, 128, 0, 255, 0, 0]
    return write(width, height, samples(width, height, 4, depth, special), greyscale=False, alpha=True, bitdepth=depth,
                 interlace=interlace)


def indexed(depth, trns, width=16, height=16, interlace=False):
    entries = palette(depth, ((1 << depth) * 3 // 4 or 1) if trns else 0)
    return write(width, height, samples(width, height, 1, depth, [0, len(entries) - 1]), palette=entries,
                 bitdepth=depth, interlace=interlace)


def keyed_grey(depth, width=16, height=16, interlace=False):
    """Grey with a tRNS colour key; about a quarter of the pixels are the key, some others are one off it."""
    top = (1 << depth) - 1
    key = top // 3 if depth < 16 else 0x1234
    rows = samples(width, height, 1, depth)
    for r in rows:
        for i in range(len(r)):
            x = rng.random()
            r[i] = key if x < 0.25 else (min(top, key + 1) if x < 0.35 else r[i])
    return write(width, height, rows, greyscale=True, bitdepth=depth, transparent=key, interlace=interlace)


def keyed_rgb(depth, width=16, height=16, interlace=False):
    """RGB with a tRNS colour key; some pixels match it, others match it in one or two channels only."""
    key = (0x12, 0x34, 0x56) if depth == 8 else (0x1234, 0x5678, 0x9ABC)
    rows = samples(width, height, 3, depth)
    for r in rows:
        for x in range(width):
            roll = rng.random()
            if roll < 0.25:
                r[3 * x:3 * x + 3] = key
            elif roll < 0.35:
                r[3 * x:3 * x + 3] = (key[0], key[1], r[3 * x + 2] ^ 1)
            elif roll < 0.4 and depth == 16:
                r[3 * x:3 * x + 3] = (key[0], key[1], key[2] + 1)  # same 8-bit value, different 16-bit: opaque
    return write(width, height, rows, greyscale=False, bitdepth=depth, transparent=key, interlace=interlace)


def solid_grey(depth, value, width=4, height=4, **kw):
    return write(width, height, [[value] * width for _ in range(height)], greyscale=True, bitdepth=depth, **kw)


def fake_icc_profile():
    """An iCCP body: name, compression method 0, zlib-compressed profile bytes (a header-shaped dummy, 132 bytes;
    decoders that ignore colour management never parse it)."""
    profile = struct.pack(">I", 132) + b"none" + b"\x02\x10\x00\x00" + b"mntrRGB XYZ " + bytes(132 - 24)
    return b"Dummy profile\x00\x00" + zlib.compress(profile)


def with_srgb_chunks(data):
    return insert_before_idat(data, [
        (b"sRGB", b"\x00"),
        (b"gAMA", struct.pack(">I", 45455)),
        (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)),
    ])


def split_idat(data, pieces):
    """IDAT split into `pieces` chunks, with a zero-length IDAT among them."""
    cs = chunks_of(data)
    idat = b"".join(b for k, b in cs if k == b"IDAT")
    step = max(1, len(idat) // pieces)
    parts = [idat[i:i + step] for i in range(0, len(idat), step)]
    parts.insert(1, b"")
    before = [c for c in cs if c[0] not in (b"IDAT", b"IEND")]
    return assemble(before + [(b"IDAT", p) for p in parts] + [(b"IEND", b"")])


def modified(change, data, *args):
    """(changed file, the file to take the expected pixels from)."""
    return change(data, *args), data


def without_iend(data):
    return assemble([c for c in chunks_of(data) if c[0] != b"IEND"])


def with_bad_ancillary_crc(data):
    cs = chunks_of(data)
    body = b"Comment\x00an ancillary chunk with a wrong CRC"
    bad = chunk(b"tEXt", body, crc=(zlib.crc32(b"tEXt" + body) ^ 0xDEADBEEF) & 0xFFFFFFFF)
    return SIGNATURE + chunk(*cs[0]) + bad + b"".join(chunk(k, b) for k, b in cs[1:])


VALID = {
    # Grey, all depths (odd sizes for the packed ones: rows that end mid-byte).
    "grey1": lambda: grey(1, 33, 17),
    "grey2": lambda: grey(2),
    "grey4": lambda: grey(4, 33, 17),
    "grey8": lambda: grey(8),
    "grey16": lambda: grey(16),
    "rgb8": lambda: rgb(8),
    "rgb8-33x17": lambda: rgb(8, 33, 17),
    "rgb16": lambda: rgb(16),
    "pal1": lambda: indexed(1, False),
    "pal2": lambda: indexed(2, False),
    "pal4": lambda: indexed(4, False),
    "pal8": lambda: indexed(8, False),
    "pal1-trns": lambda: indexed(1, True),
    "pal2-trns-3x5": lambda: indexed(2, True, 3, 5),
    "pal4-trns": lambda: indexed(4, True),
    "pal8-trns": lambda: indexed(8, True),
    "greyalpha8": lambda: grey_alpha(8),
    "greyalpha16": lambda: grey_alpha(16),
    "rgba8": lambda: rgba(8),
    "rgba8-1x1": lambda: rgba(8, 1, 1),
    "rgba16": lambda: rgba(16),
    # Adam7 interlaced (sizes where some passes are empty too).
    "adam7-grey1-33x17": lambda: grey(1, 33, 17, interlace=True),
    "adam7-grey2": lambda: grey(2, interlace=True),
    "adam7-grey4": lambda: grey(4, interlace=True),
    "adam7-grey8": lambda: grey(8, interlace=True),
    "adam7-grey16": lambda: grey(16, interlace=True),
    "adam7-grey16-1x1": lambda: grey(16, 1, 1, interlace=True),
    "adam7-rgb8": lambda: rgb(8, interlace=True),
    "adam7-rgb16-32x32": lambda: rgb(16, 32, 32, interlace=True),  # the class of PngSuite's basi2c16
    "adam7-pal1": lambda: indexed(1, False, interlace=True),
    "adam7-pal4-trns": lambda: indexed(4, True, interlace=True),
    "adam7-pal8": lambda: indexed(8, False, interlace=True),
    "adam7-greyalpha8": lambda: grey_alpha(8, interlace=True),
    "adam7-greyalpha16": lambda: grey_alpha(16, interlace=True),
    "adam7-rgba8-3x5": lambda: rgba(8, 3, 5, interlace=True),
    "adam7-rgba16": lambda: rgba(16, interlace=True),
    # Colour-management chunks, all to be ignored.
    "grey8-gama100-128": lambda: solid_grey(8, 128, gamma=1.0),  # simplified API gave 186
    "grey16-8080": lambda: solid_grey(16, 0x8080),  # no gAMA: simplified API took it as linear, 186
    "rgb8-gama100": lambda: rgb(8, gamma=1.0),
    "rgb8-gama045": lambda: rgb(8, gamma=0.45455),
    "rgb16-gama100": lambda: rgb(16, gamma=1.0),
    "adam7-rgb16-gama045": lambda: rgb(16, interlace=True, gamma=0.45455),
    "rgba8-srgb": lambda: with_srgb_chunks(rgba(8)),
    "grey16-srgb": lambda: with_srgb_chunks(grey(16)),
    "rgb8-iccp": lambda: insert_before_idat(rgb(8), [(b"iCCP", fake_icc_profile())]),
    # tRNS colour keys.
    "grey2-key": lambda: keyed_grey(2),
    "grey8-key": lambda: keyed_grey(8),
    "grey16-key": lambda: keyed_grey(16),
    "rgb8-key": lambda: keyed_rgb(8),
    "rgb16-key": lambda: keyed_rgb(16),
    "adam7-rgb16-key": lambda: keyed_rgb(16, 9, 9, interlace=True),
    # Stream structure that must be accepted.
    # (The expected pixels of these come from the unmodified file: pypng itself rejects some of them.)
    "rgb8-split-idat": lambda: modified(split_idat, rgb(8, 33, 17), 7),
    "rgb8-no-iend": lambda: modified(without_iend, rgb(8)),  # decision: pixels complete, IEND not required
    "rgb8-after-iend": lambda: modified(lambda d: d + b"trailing bytes after IEND", rgb(8)),
    "rgb8-text-bad-crc": lambda: modified(with_bad_ancillary_crc, rgb(8)),  # ancillary CRC error: a warning
}


def idat_stream(raw_rows):
    return zlib.compress(b"".join(b"\x00" + r for r in raw_rows))


def plain_rgb8():
    """A small valid 8x8 RGB PNG, built by hand, as the base of the corrupt files: IHDR, IDAT, IEND."""
    rows = [bytes(rng.randint(0, 255) for _ in range(24)) for _ in range(8)]
    return [(b"IHDR", ihdr(8, 8, 8, 2)), (b"IDAT", idat_stream(rows)), (b"IEND", b"")], rows


def corrupt_files():
    base, rows = plain_rgb8()
    good = assemble(base)
    idat_at = good.index(b"IDAT") - 4
    idat_len = len(base[1][1])
    out = {}
    out["bad-signature"] = b"\x89PNG\r\n\x1a\x0b" + good[8:]
    out["signature-only"] = SIGNATURE
    out["truncated-in-ihdr"] = good[:20]
    out["truncated-after-ihdr"] = good[:idat_at]
    out["truncated-in-idat"] = good[:idat_at + 8 + idat_len // 2]
    out["truncated-before-idat-crc"] = good[:idat_at + 8 + idat_len]
    bad_idat_crc = bytearray(good)
    bad_idat_crc[idat_at + 8 + idat_len] ^= 0x01
    out["idat-bad-crc"] = bytes(bad_idat_crc)
    bad_ihdr_crc = bytearray(good)
    bad_ihdr_crc[8 + 8 + 13] ^= 0x80
    out["ihdr-bad-crc"] = bytes(bad_ihdr_crc)
    out["ihdr-bit-depth-3"] = assemble([(b"IHDR", ihdr(8, 8, 3, 2))] + base[1:])
    out["ihdr-colour-type-5"] = assemble([(b"IHDR", ihdr(8, 8, 8, 5))] + base[1:])
    out["ihdr-palette-16-bit"] = assemble([(b"IHDR", ihdr(8, 8, 16, 3)), (b"PLTE", bytes(6))] + base[1:])
    out["ihdr-interlace-method-2"] = assemble([(b"IHDR", ihdr(8, 8, 8, 2, interlace=2))] + base[1:])
    out["ihdr-compression-method-1"] = assemble([(b"IHDR", ihdr(8, 8, 8, 2, compression=1))] + base[1:])
    out["ihdr-short"] = assemble([(b"IHDR", ihdr(8, 8, 8, 2)[:12])] + base[1:])
    out["zero-width"] = assemble([(b"IHDR", ihdr(0, 8, 8, 2))] + base[1:])
    out["zero-height"] = assemble([(b"IHDR", ihdr(8, 0, 8, 2))] + base[1:])
    out["width-over-2^31"] = assemble([(b"IHDR", ihdr(0x80000000, 1, 8, 2))] + base[1:])
    out["chunk-length-over-2^31"] = good[:idat_at] + struct.pack(">I", 0x80000000) + good[idat_at + 4:]
    out["first-chunk-not-ihdr"] = assemble([base[1], base[0], base[2]])
    out["no-idat"] = assemble([base[0], base[2]])
    out["palette-without-plte"] = assemble([(b"IHDR", ihdr(8, 8, 8, 3)), (b"IDAT", idat_stream([bytes(8)] * 8)),
                                            (b"IEND", b"")])
    out["plte-bad-crc"] = (SIGNATURE + chunk(b"IHDR", ihdr(8, 8, 8, 3))
                           + chunk(b"PLTE", bytes(3 * 4), crc=0x12345678)
                           + chunk(b"IDAT", idat_stream([bytes(8)] * 8)) + chunk(b"IEND", b""))
    stream = idat_stream(rows)
    out["zlib-bad-header"] = assemble([base[0], (b"IDAT", b"\x78\x9d" + stream[2:]), base[2]])
    out["zlib-bad-deflate"] = assemble([base[0], (b"IDAT", stream[:2] + b"\xff" * 6 + stream[8:]), base[2]])
    out["zlib-stream-too-short"] = assemble([base[0], (b"IDAT", idat_stream(rows[:5])), base[2]])
    out["bad-filter-type"] = assemble([base[0], (b"IDAT", zlib.compress(b"".join(b"\x05" + r for r in rows))),
                                       base[2]])
    return out


def expected_rgba(data):
    """8-bit straight RGBA rows from pypng's decoder (no colour management), and the file's bit depth."""
    reader = png.Reader(bytes=data)
    width, height, rows, info = reader.asRGBA()
    depth = info["bitdepth"]
    top = (1 << depth) - 1
    out = bytearray()
    for row in rows:
        if depth == 8:
            out.extend(row)
        else:
            out.extend(int(round(v * 255 / top)) for v in row)
    assert len(out) == width * height * 4
    return width, height, bytes(out), depth


def main():
    for name in os.listdir(HERE):
        if name.endswith((".png", ".rgba")) or name == "manifest.json":
            os.remove(os.path.join(HERE, name))
    manifest = {"valid": [], "corrupt": []}
    for name, make in VALID.items():
        made = make()
        data, reference = made if isinstance(made, tuple) else (made, made)
        width, height, pixels, depth = expected_rgba(reference)
        with open(os.path.join(HERE, name + ".png"), "wb") as f:
            f.write(data)
        with open(os.path.join(HERE, name + ".rgba"), "wb") as f:
            f.write(pixels)
        manifest["valid"].append({"name": name, "width": width, "height": height,
                                  "tolerance": 1 if depth == 16 else 0})
    for name, data in corrupt_files().items():
        with open(os.path.join(HERE, name + ".png"), "wb") as f:
            f.write(data)
        manifest["corrupt"].append({"name": name})
    with open(os.path.join(HERE, "manifest.json"), "w") as f:  # one entry a line
        f.write("{\n")
        for i, key in enumerate(("valid", "corrupt")):
            f.write(f' "{key}": [\n')
            f.write(",\n".join("  " + json.dumps(e) for e in manifest[key]))
            f.write("\n ]" + (",\n" if i == 0 else "\n"))
        f.write("}\n")
    total = sum(os.path.getsize(os.path.join(HERE, n)) for n in os.listdir(HERE))
    print(f"{len(manifest['valid'])} valid, {len(manifest['corrupt'])} corrupt, {total} bytes in {HERE}")


if __name__ == "__main__":
    main()
