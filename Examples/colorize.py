#!/usr/bin/python3
"""Python example: talk to paintsd with pyzmq alone (Debian: python3-zmq), streaming progress.

    /usr/bin/python3 Examples/colorize.py SKETCH.png HINTS.png OUT.png [ENDPOINT]

The endpoint defaults to $PAINTSD_ENDPOINT, else the per-user socket paintsd listens on by default.
"""
import json
import os
import sys
import uuid

import zmq


def default_endpoint():
    if os.environ.get("PAINTSD_ENDPOINT"):
        return os.environ["PAINTSD_ENDPOINT"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    directory = f"{runtime}/paintsd" if runtime else f"/tmp/paintsd-{os.getuid()}"
    return f"ipc://{directory}/paintsd.sock"


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sketch_path, hints_path, out_path = sys.argv[1:4]
    endpoint = sys.argv[4] if len(sys.argv) > 4 else default_endpoint()
    if endpoint.startswith("ipc://") and not os.path.exists(endpoint[6:]):
        sys.exit(f"no paintsd at {endpoint}; start one with `paintsd`")

    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    request_id = uuid.uuid4().hex
    header = {
        "protocol": 1, "id": request_id, "method": "colorize", "stream": True,
        "params": {"sketch": {"frame": 1, "encoding": "png"}, "hints": {"frame": 2, "encoding": "png"},
                   "options": {"composite_lines": True}},
    }
    with open(sketch_path, "rb") as f:
        sketch = f.read()
    with open(hints_path, "rb") as f:
        hints = f.read()
    # Frame 0: the JSON header; frames 1 and 2: the PNG bytes, no base64.
    socket.send_multipart([json.dumps(header).encode(), sketch, hints])

    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    while True:
        if not poller.poll(60_000):
            sys.exit("no reply within 60 s")
        frames = socket.recv_multipart()
        reply = json.loads(frames[0])
        if reply.get("id") != request_id:
            continue
        if reply["type"] == "accepted":
            print(f"accepted as {reply['job']} (queue position {reply['queue_position']})")
        elif reply["type"] == "progress":
            p = reply["progress"]
            print(f"{p['fraction'] * 100:5.1f}%  {p['stage']} {p['step']}/{p['steps']}")
        elif reply["type"] == "error":
            error = reply["error"]
            sys.exit(f"paintsd error {error['code']}: {error['message']}")
        else:
            image = reply["result"]["image"]
            with open(out_path, "wb") as f:
                f.write(frames[image["frame"]])
            print(f"wrote {out_path}: {image['width']}x{image['height']}, engine {reply['result']['engine']}, "
                  f"{reply['result']['timings']['total_ms']:.0f} ms")
            return


if __name__ == "__main__":
    main()
