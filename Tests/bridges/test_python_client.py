"""Bridges/python/paintsd_client.py against a real paintsd (started by scripts/with-daemon.sh, which exports
PAINTSD_ENDPOINT). Run: scripts/with-daemon.sh .build/debug /usr/bin/python3 -m unittest discover -s Tests/bridges"""
import json
import os
import struct
import sys
import time
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "Bridges", "python"))
import paintsd_client as pc  # noqa: E402

ART = os.path.join(ROOT, "Examples", "art")


def read(name):
    with open(os.path.join(ART, name), "rb") as f:
        return f.read()


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


class ClientTests(unittest.TestCase):
    def setUp(self):
        self.client = pc.Client()

    def tearDown(self):
        self.client.close()

    def test_hello_lists_engines_and_defaults(self):
        info = self.client.hello()
        self.assertEqual(info["protocol"], 1)
        self.assertIn("builtin", [e["name"] for e in info["engines"]])
        self.assertEqual(info["defaults"]["colorize"], "builtin")

    def test_colorize_streams_progress_and_returns_the_layer(self):
        sketch = read("umbrella-lineart.png")
        job = self.client.submit("colorize", {"sketch": pc.png_frame(1), "hints": pc.png_frame(2), "seed": 5},
                                 frames=[sketch, read("umbrella-hints.png")])
        kinds = [event.type for event in job.events(timeout=60)]
        self.assertEqual(kinds[0], "accepted")
        self.assertIn("progress", kinds)
        self.assertEqual(job.seed, 5)
        self.assertEqual(job.engine, "builtin")
        self.assertEqual(png_size(job.result.image("image")), png_size(sketch))

    def test_colorize_result_as_layers(self):
        # The builtin engine's result is one visible `color` layer: the same frame as `image`.
        result = self.client.run("colorize", {"sketch": pc.png_frame(1), "hints": pc.png_frame(2), "seed": 5},
                                 frames=[read("umbrella-lineart.png"), read("umbrella-hints.png")], timeout=60)
        layers = result.layers()
        self.assertEqual([(layer.name, layer.visible) for layer in layers], [("color", True)])
        self.assertEqual(layers[0].data, result.image("image"))
        self.assertEqual(layers[0].reference["encoding"], "png")

    def test_raw_rgba_in_and_out(self):
        w, h = 64, 48
        white = bytes([255, 255, 255, 255]) * (w * h)
        pixels = bytearray(white)
        for x in range(w):                       # a black horizontal line splits two regions
            pixels[(24 * w + x) * 4:(24 * w + x) * 4 + 3] = b"\x00\x00\x00"
        hints = bytearray(bytes(w * h * 4))
        hints[(10 * w + 10) * 4:(10 * w + 10) * 4 + 4] = bytes([200, 30, 40, 255])
        result = self.client.run("colorize", {"sketch": pc.rgba_frame(1, w, h), "hints": pc.rgba_frame(2, w, h),
                                              "output": "rgba8"}, frames=[bytes(pixels), bytes(hints)], timeout=60)
        data = result.image("image")
        self.assertEqual(len(data), w * h * 4)
        self.assertEqual(tuple(data[(5 * w + 5) * 4:(5 * w + 5) * 4 + 3]), (200, 30, 40))   # the hinted region
        self.assertEqual(data[(40 * w + 5) * 4 + 3], 0)                                    # the other stays clear

    def test_error_replies_are_typed_and_the_daemon_keeps_serving(self):
        with self.assertRaises(pc.PaintsdError) as caught:
            self.client.run("colorize", {"sketch": pc.png_frame(1), "seed": -3}, frames=[read("umbrella-lineart.png")],
                            timeout=30)
        self.assertEqual(caught.exception.code, "invalid_params")
        with self.assertRaises(pc.PaintsdError) as caught:
            self.client.run("colorize", {"sketch": pc.png_frame(1)}, frames=[b"not a png"], timeout=30)
        self.assertEqual(caught.exception.code, "image_decode_failed")
        self.assertTrue(self.client.call("ping")["pong"])

    def test_pump_and_pending_never_block(self):
        job = self.client.submit("undo.preview", {"image": pc.png_frame(1), "steps": [999, 0]},
                                 frames=[read("blocks-colored.png")])
        start = time.monotonic()
        self.assertEqual(job.pending(), [])
        seen = []
        while not job.done and time.monotonic() - start < 60:
            self.client.pump()                   # what a GUI timer does
            seen += job.pending()
            time.sleep(0.01)
        self.assertIsNotNone(job.result, f"failed: {job.failure!r}")
        self.assertEqual([f["step"] for f in job.result.result["frames"]], [999, 0])
        self.assertEqual(png_size(job.result.image(job.result.result["frames"][1]["image"])), png_size(read("blocks-colored.png")))
        self.assertEqual(seen[-1].type, "result")

    def test_cancel_stops_a_running_job(self):
        w = h = 1024
        picture = bytes((i * 7) % 256 for i in range(w * h * 4))
        job = self.client.submit("undo.preview", {"image": pc.rgba_frame(1, w, h), "count": 64, "output": "rgba8"},
                                 frames=[picture])
        for event in job.events(timeout=60):
            if event.type == "progress":
                job.cancel()
                break
        with self.assertRaises(pc.PaintsdError) as caught:
            job.wait(timeout=60)
        self.assertEqual(caught.exception.code, "cancelled")


def canned_reply(result, frames):
    return pc.Reply([json.dumps({"protocol": 1, "id": "x", "type": "result", "result": result}).encode()] + frames)


class LayersWithoutDaemonTests(unittest.TestCase):
    """Reply.layers() on canned results: the sd engine's two layers, and a result from a daemon without `layers`."""

    def test_two_layers_top_first_with_visibility(self):
        ref = lambda i: {"frame": i, "encoding": "rgba8", "width": 1, "height": 1}  # noqa: E731
        reply = canned_reply({"image": ref(1), "layers": [{"name": "color", "image": ref(2), "visible": True},
                                                          {"name": "flats", "image": ref(3), "visible": False}]},
                             [b"\1\1\1\xff", b"\2\2\2\xff", b"\3\3\3\xff"])
        layers = reply.layers()
        self.assertEqual([(layer.name, layer.visible, layer.data) for layer in layers],
                         [("color", True, b"\2\2\2\xff"), ("flats", False, b"\3\3\3\xff")])
        self.assertEqual(layers[1].reference, ref(3))

    def test_a_result_without_layers_is_one_color_layer(self):
        reply = canned_reply({"image": {"frame": 1, "encoding": "png"}}, [b"png bytes"])
        self.assertEqual([(layer.name, layer.visible, layer.data) for layer in reply.layers()],
                         [("color", True, b"png bytes")])


class NoDaemonTests(unittest.TestCase):
    def test_a_missing_daemon_is_a_clear_error(self):
        with pc.Client("ipc:///tmp/paintsd-no-such-daemon.sock") as client:
            with self.assertRaises(pc.DaemonNotRunning) as caught:
                client.hello()
        self.assertIn("start one with `paintsd`", str(caught.exception))

    def test_a_silent_endpoint_times_out_as_not_running(self):
        with pc.Client("tcp://127.0.0.1:9") as client:
            with self.assertRaises(pc.DaemonNotRunning):
                client.hello(timeout=0.5)


if __name__ == "__main__":
    unittest.main()
