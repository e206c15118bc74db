"""A stand-in paintsd for the bridges' tests of what the real daemon cannot give them here: an `sd` engine (whose
models the tests do not have) described in `hello` with its newer options (enums, `assets`), and colorize results of
two layers, `color` (shown) and `flats` (hidden), as the sd engine returns them. It speaks the protocol's framing
(DEALER/ROUTER, JSON header + frames) and answers hello, engines.list, ping, colorize and jobs.cancel; every request
header it gets is appended to a JSON-lines log, so a test can check what a plug-in sent (e.g. the options its dialog
built). Not a daemon to use: every colorize gives the same canned layers, the sketch's size.

    /usr/bin/python3 Tests/bridges/fake_daemon.py ENDPOINT LOG.jsonl      (runs until SIGTERM)

The canned pixels, R,G,B,A: `color` is (200, 40, 30, 255) on the left half and transparent on the right, `flats` is
(30, 60, 220, 255) everywhere; `image` is its own frame (the colour, opaque white where the colour is transparent).
"""
import json
import os
import signal
import struct
import sys
import zlib

import zmq

COLOR = (200, 40, 30, 255)
FLATS = (30, 60, 220, 255)

SD_OPTIONS = {
    "model": {"type": "string", "default": "anything-v5", "enum": ["anything-v5", "counterfeit-v3"],
              "description": "the Stable Diffusion model"},
    "controlnet": {"type": "string", "default": "auto",
                   "enum": ["auto", "none", "control_v11p_sd15s2_lineart_anime", "control_v11p_sd15_canny", "mystery"],
                   "description": "ControlNet that follows the line art: auto, none or a name"},
    "control_strength": {"type": "number", "default": 1, "minimum": 0, "maximum": 2,
                         "description": "how strongly the ControlNet holds the lines"},
    "control_start": {"type": "number", "default": 0, "minimum": 0, "maximum": 1, "description": "ControlNet start"},
    "control_end": {"type": "number", "default": 1, "minimum": 0, "maximum": 1, "description": "ControlNet end"},
    "guess_mode": {"type": "boolean", "default": False, "description": "ControlNet guess mode"},
    "hint_strength": {"type": "number", "default": 0.75, "minimum": 0.05, "maximum": 1,
                      "description": "how far the result may move from the flat colours"},
    "palette_lock": {"type": "number", "default": 0.5, "minimum": 0, "maximum": 1,
                     "description": "how closely the colours keep the scribbles' hues"},
    "steps": {"type": "integer", "default": 20, "minimum": 1, "maximum": 100, "description": "sampling steps"},
    "guidance": {"type": "number", "default": 7, "minimum": 1, "maximum": 30, "description": "guidance scale"},
    "sampler": {"type": "string", "default": "dpmpp_2m_karras",
                "enum": ["ddim", "euler_a", "dpmpp_2m", "dpmpp_2m_karras", "unipc"], "description": "sampler"},
    "size": {"type": "integer", "default": 512, "minimum": 64, "maximum": 2048, "description": "working size"},
}

HELLO = {
    "protocol": 1,
    "daemon": {"name": "paintsd", "version": "0.0.0-fake", "pid": 0},
    "methods": ["hello", "ping", "engines.list", "colorize", "jobs.cancel"],
    "engines": [
        {"name": "builtin", "status": "ready", "methods": ["colorize"], "summary": "flat fill",
         "capabilities": {"colorize": {"inputs": ["sketch", "hints", "reference"], "options": {
             "gap_closing": {"type": "integer", "default": 2, "minimum": 0, "maximum": 16, "description": "gaps"},
             "composite_lines": {"type": "boolean", "default": False, "description": "lines over the colours"}}}}},
        {"name": "sd", "status": "available", "methods": ["colorize"], "summary": "Stable Diffusion (canned)",
         "capabilities": {"colorize": {"inputs": ["sketch", "hints", "reference", "prompt", "negative_prompt"],
                                       "options": SD_OPTIONS}},
         "assets": {"models": ["anything-v5", "counterfeit-v3"], "controlnets": [
             {"name": "control_v11p_sd15s2_lineart_anime", "kind": "lineart_anime", "kind_source": "name",
              "takes_line_art": True},
             {"name": "control_v11p_sd15_canny", "kind": "canny", "kind_source": "name", "takes_line_art": False},
             {"name": "mystery", "kind": "unknown", "kind_source": "name", "takes_line_art": False,
              "problem": "its kind is unknown: add a mystery.json sidecar"}]}},
    ],
    "defaults": {"colorize": "sd"},
}


def png(width, height, pixel_at):
    rows = b"".join(b"\0" + b"".join(bytes(pixel_at(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def size_of(reference, frames):
    """The sketch's size: from an rgba8 reference, or from its PNG frame's header."""
    if reference.get("encoding") == "rgba8":
        return reference["width"], reference["height"]
    data = frames[reference["frame"]]
    return struct.unpack(">II", data[16:24])


def picture(width, height, encoding, pixel_at):
    if encoding == "rgba8":
        left = bytes(pixel_at(0, 0)) * (width // 2)
        right = bytes(pixel_at(width - 1, 0)) * (width - width // 2)
        return (left + right) * height
    return png(width, height, pixel_at)


def colorize_result(params, frames):
    width, height = size_of(params["sketch"], frames)
    encoding = params.get("output", "png")
    color = lambda x, y: COLOR if x < width // 2 else (0, 0, 0, 0)          # noqa: E731
    image = lambda x, y: COLOR if x < width // 2 else (255, 255, 255, 255)   # noqa: E731
    flats = lambda x, y: FLATS                                              # noqa: E731
    payloads = [picture(width, height, encoding, p) for p in (image, color, flats)]
    ref = lambda i: {"frame": i, "encoding": encoding, "width": width, "height": height}  # noqa: E731
    result = {"image": ref(1), "layers": [{"name": "color", "image": ref(2), "visible": True},
                                          {"name": "flats", "image": ref(3), "visible": False}],
              "engine": params.get("engine") or "sd", "seed": params.get("seed", 1234),
              "timings": {"queued_ms": 0, "decode_ms": 0, "run_ms": 0, "encode_ms": 0, "total_ms": 0},
              "info": {"model": (params.get("options") or {}).get("model", "anything-v5")}}
    return result, payloads


def main(endpoint, log_path):
    context = zmq.Context.instance()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.bind(endpoint)
    # Exit at once: sys.exit inside recv_multipart left the interpreter waiting in zmq's context teardown now and then
    # (a c_client run hung in `wait` on it); the log is flushed after every line already.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    jobs = 0
    with open(log_path, "a") as log:
        while True:
            frames = socket.recv_multipart()
            peer, header, images = frames[0], json.loads(frames[1]), [None] + frames[2:]
            log.write(json.dumps(header) + "\n")
            log.flush()
            method, rid = header.get("method"), header.get("id")

            def send(reply, payloads=()):
                socket.send_multipart([peer, json.dumps(dict(reply, protocol=1, id=rid)).encode()] + list(payloads))
            if method in ("hello", "engines.list"):
                send({"type": "result", "result": HELLO})
            elif method == "ping":
                send({"type": "result", "result": {"pong": True, "time": 0}})
            elif method == "jobs.cancel":
                send({"type": "result", "result": {"state": "done", "was": "done"}})
            elif method == "colorize":
                jobs += 1
                job = f"fake-{jobs}"
                params = header.get("params") or {}
                send({"type": "accepted", "job": job, "engine": params.get("engine") or "sd",
                      "seed": params.get("seed", 1234), "queue_position": 0})
                if header.get("stream"):
                    send({"type": "progress", "job": job,
                          "progress": {"stage": "sample", "step": 1, "steps": 1, "fraction": 1.0}})
                result, payloads = colorize_result(params, images)
                send({"type": "result", "job": job, "result": result}, payloads)
            else:
                send({"type": "error", "error": {"code": "unknown_method", "message": f"the fake daemon has no {method}"}})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
