#!/usr/bin/python3
"""Python example: colorize line art with paintsd through the bridges' Python client (Bridges/python), streaming
progress. Needs pyzmq alone (Debian: python3-zmq).

    /usr/bin/python3 Examples/colorize.py SKETCH.png HINTS.png OUT.png [ENDPOINT]

The endpoint defaults to $PAINTSD_ENDPOINT, else the per-user socket paintsd listens on by default.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Bridges", "python"))
import paintsd_client as pc  # noqa: E402


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sketch_path, hints_path, out_path = sys.argv[1:4]
    # Frame 1: the sketch, frame 2: the hints, as PNG bytes (no base64).
    params = {"sketch": pc.png_frame(1), "hints": pc.png_frame(2), "options": {"composite_lines": True}}
    try:
        with pc.Client(sys.argv[4] if len(sys.argv) > 4 else None) as client:
            client.hello()        # fails at once, with the command that starts a daemon, when none is running
            frames = []
            for path in (sketch_path, hints_path):
                with open(path, "rb") as f:
                    frames.append(f.read())
            job = client.submit("colorize", params, frames)
            for event in job.events(timeout=120):
                if event.type == "accepted":
                    print(f"accepted as {event.job} (queue position {event.header['queue_position']})")
                else:
                    p = event.progress
                    print(f"{p['fraction'] * 100:5.1f}%  {p['stage']} {p['step']}/{p['steps']}")
    except pc.PaintsdError as error:
        sys.exit(f"paintsd: {error}")
    result = job.result.result
    with open(out_path, "wb") as f:
        f.write(job.result.image("image"))
    print(f"wrote {out_path}: {result['image']['width']}x{result['image']['height']}, engine {result['engine']}, "
          f"{result['timings']['total_ms']:.0f} ms")


if __name__ == "__main__":
    main()
