#!/usr/bin/env python3
"""Builds the sample art in Examples/art from public-domain Open Clip Art (Debian's openclipart-svg package).

For each picture: the coloured original (ground truth), line art (the same drawing with every fill removed), and colour
scribbles (a short stroke of each region's true colour, inside the region) for the colorizer.

Needs: rsvg-convert (librsvg2-bin), openclipart-svg, numpy, scipy. Run from the repository root:
    python3 Examples/tools/make_samples.py
The outputs are committed; the demo and the tests do not run this script.
"""
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
from scipy import ndimage

CLIPART = "/usr/share/openclipart/svg"
SAMPLES = {
    # name: (svg path under CLIPART, output width)
    "umbrella": ("tools/umbrella.svg", 512),
    "blocks": ("tools/toys/unit_blocks_lion_kimbro_01.svg", 512),
}
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "art")


def read_png(path):
    """Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what rsvg-convert writes) to an HxWx4 uint8 array."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, "expected 8-bit RGB(A)"
            bpp = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    out = np.zeros((height, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, dtype=np.int32)
        for x in range(stride):
            a = cur[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 0:
                p = 0
            elif f == 1:
                p = a
            elif f == 2:
                p = b
            elif f == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    pixels = out.reshape(height, width, bpp).astype(np.uint8)
    if bpp == 3:
        pixels = np.concatenate([pixels, np.full((height, width, 1), 255, np.uint8)], axis=2)
    return pixels


def write_png(path, rgba):
    height, width, _ = rgba.shape
    raw = b"".join(b"\x00" + rgba[y].tobytes() for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def render(svg_text, width, path):
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False) as f:
        f.write(svg_text)
    subprocess.run(["rsvg-convert", "-w", str(width), "-b", "white", f.name, "-o", path], check=True)
    os.unlink(f.name)


def without_fills(svg):
    """Every fill that is not near-black becomes none; strokes stay."""
    def repl(m):
        colour = m.group(1).lower()
        r, g, b = int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
        return m.group(0) if max(r, g, b) < 80 else "fill:none"
    svg = re.sub(r"fill:\s*(#[0-9a-fA-F]{6})", repl, svg)
    return re.sub(r'fill="(#[0-9a-fA-F]{6})"', lambda m: 'fill="none"' if max(int(m.group(1)[i:i + 2], 16) for i in (1, 3, 5)) >= 80 else m.group(0), svg)


def scribbles(colored, lineart):
    """One stroke per region of the line art, in the region's most common true colour, away from its lines."""
    lum = lineart[..., :3].astype(np.float32).mean(axis=2) / 255
    open_ = lum > 0.6
    labels, count = ndimage.label(open_)
    height, width = open_.shape
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])))
    hints = np.zeros((height, width, 4), dtype=np.uint8)
    for region in range(1, count + 1):
        if region in border:
            continue
        mask = labels == region
        if mask.sum() < 150:
            continue
        colours, counts = np.unique(colored[mask][:, :3].reshape(-1, 3), axis=0, return_counts=True)
        colour = colours[counts.argmax()]
        inside = ndimage.distance_transform_edt(mask)
        cy, cx = np.unravel_index(inside.argmax(), inside.shape)
        radius = max(2, min(5, int(inside[cy, cx] / 3)))
        length = int(inside[cy, cx])
        # A short horizontal stroke through the most interior point, clipped to the region.
        yy, xx = np.mgrid[0:height, 0:width]
        stroke = (np.abs(yy - cy) <= radius) & (np.abs(xx - cx) <= length) & (inside > radius + 1)
        hints[stroke] = (*colour, 255)
    return hints


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (svg_path, width) in SAMPLES.items():
        svg = open(os.path.join(CLIPART, svg_path), encoding="utf-8").read()
        colored = os.path.join(OUT, f"{name}-colored.png")
        lineart = os.path.join(OUT, f"{name}-lineart.png")
        render(svg, width, colored)
        render(without_fills(svg), width, lineart)
        hints = scribbles(read_png(colored), read_png(lineart))
        write_png(os.path.join(OUT, f"{name}-hints.png"), hints)
        print(f"{name}: {svg_path} -> {colored}, {lineart}, hints", file=sys.stderr)


if __name__ == "__main__":
    main()
