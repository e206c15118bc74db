#!/usr/bin/python3
"""Pixel checks for the bridge tests, on PNG files, with the standard library alone (8-bit RGB/RGBA, not interlaced).

    pngcheck.py size FILE WIDTH HEIGHT
    pngcheck.py colors RESULT ORIGINAL [MIN_FRACTION]   opaque result pixels match the original's colours
    pngcheck.py differ A B                              the two pictures are not identical
    pngcheck.py pixel FILE X Y R G B A                  the pixel at (X, Y) is that R,G,B,A
Exit status 0 when the check holds; prints what it measured."""
import struct
import sys
import zlib


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"{path}: unsupported PNG {header}"
    channels = 4 if color == 6 else 3
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    pixels = []
    for row in rows:
        for x in range(width):
            px = row[x * channels:(x + 1) * channels]
            pixels.append(tuple(px) + ((255,) if channels == 3 else ()))
    return width, height, pixels


def main():
    check = sys.argv[1]
    if check == "size":
        w, h, _ = read_png(sys.argv[2])
        print(f"{sys.argv[2]}: {w}x{h}")
        return (w, h) == (int(sys.argv[3]), int(sys.argv[4]))
    if check == "colors":
        w, h, result = read_png(sys.argv[2])
        w2, h2, original = read_png(sys.argv[3])
        minimum = float(sys.argv[4]) if len(sys.argv) > 4 else 0.9
        if (w, h) != (w2, h2):
            print(f"sizes differ: {w}x{h} and {w2}x{h2}")
            return False
        # Opaque result pixels away from the ink (the flat colours run on under the lines, where the original is black).
        opaque = [(r, o) for r, o in zip(result, original) if r[3] > 128 and sum(o[:3]) > 300]
        close = sum(1 for r, o in opaque if sum(abs(r[i] - o[i]) for i in range(3)) <= 60)
        fraction = close / max(1, len(opaque))
        print(f"{len(opaque)} opaque pixels, {fraction:.3f} of them in the original's colour (need {minimum})")
        return len(opaque) > w * h // 10 and fraction >= minimum
    if check == "differ":
        _, _, a = read_png(sys.argv[2])
        _, _, b = read_png(sys.argv[3])
        return a != b
    if check == "pixel":
        w, _, pixels = read_png(sys.argv[2])
        x, y = int(sys.argv[3]), int(sys.argv[4])
        wanted = tuple(int(v) for v in sys.argv[5:9])
        print(f"{sys.argv[2]} at ({x}, {y}): {pixels[y * w + x]}, wanted {wanted}")
        return pixels[y * w + x] == wanted
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
