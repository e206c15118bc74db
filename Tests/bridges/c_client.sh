#!/usr/bin/env bash
# The C client library (Bridges/c) through its example program against a real paintsd: a job with frames, an error
# reply, no daemon, and a client killed mid-job (as GIMP kills a plug-in whose progress is cancelled), whose job the
# daemon must cancel. Usage: Tests/bridges/c_client.sh BIN_DIR. Prints a closing "c-client: N passed, N failed" line.
set -uo pipefail
bin=${1:-.build/debug}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PAINTSD_ENDPOINT:-}" ]; then exec "$root/scripts/with-daemon.sh" "$bin" "$0" "$bin"; fi
source "$root/scripts/checks.sh" c-client
check_prefix=c
make -s -C "$root/Bridges/c" >"$work/build.log" 2>&1 || { cat "$work/build.log"; echo "c-client: 0 passed, 1 failed"; exit 1; }
run="$root/Bridges/c/paintsd-run"
art="$root/Examples/art"
colorize() {
    "$run" colorize '{"sketch": {"frame": 1, "encoding": "png"}, "hints": {"frame": 2, "encoding": "png"}}' \
        "$work/out.png" "$art/umbrella-lineart.png" "$art/umbrella-hints.png" >"$work/colorize.out" || return 1
    grep -q "progress 100%" "$work/colorize.out"
}
check colorize colorize
check colorize-output python3 "$root/Tests/bridges/pngcheck.py" size "$work/out.png" 512 512
# A colorize result's layers (paintsd_reply_layers): the builtin engine's one `color` layer is the picture itself.
builtin_layers() {
    mkdir -p "$work/layers"
    "$run" --layers "$work/layers" colorize '{"sketch": {"frame": 1, "encoding": "png"}, "hints": {"frame": 2, "encoding": "png"}}' \
        "$work/out2.png" "$art/umbrella-lineart.png" "$art/umbrella-hints.png" >"$work/layers.out" || return 1
    [ "$(grep '^layer ' "$work/layers.out")" = "layer color visible" ] && cmp "$work/layers/color.png" "$work/out2.png"
}
check layers-builtin-one-color-layer builtin_layers
# Two layers, `color` shown over `flats` hidden, as the sd engine gives them: from a stand-in daemon with a canned
# result (Tests/bridges/fake_daemon.py; there are no sd models here), in raw rgba8 as the GIMP plug-in asks.
fake_layers() {
    mkdir -p "$work/fake-layers"
    /usr/bin/python3 "$root/Tests/bridges/fake_daemon.py" "ipc://$work/fake.sock" "$work/fake.jsonl" &
    local fake=$!
    for _ in $(seq 200); do [ -S "$work/fake.sock" ] && break; sleep 0.05; done
    PAINTSD_ENDPOINT="ipc://$work/fake.sock" "$run" --layers "$work/fake-layers" colorize \
        '{"sketch": {"frame": 1, "encoding": "png"}, "engine": "sd", "output": "rgba8"}' "$work/fake.rgba" \
        "$art/umbrella-lineart.png" >"$work/fake.out"
    local rc=$?
    kill $fake; wait $fake 2>/dev/null
    [ $rc -eq 0 ] || return 1
    [ "$(grep '^layer ' "$work/fake.out" | tr '\n' ' ')" = "layer color visible layer flats hidden " ] || { cat "$work/fake.out"; return 1; }
    # 512x512 raw RGBA each; color's first pixel (200, 40, 30, 255), flats' (30, 60, 220, 255).
    [ "$(stat -c %s "$work/fake-layers/color.rgba")" -eq $((512 * 512 * 4)) ] &&
        [ "$(head -c 4 "$work/fake-layers/color.rgba" | od -An -tu1 | tr -s ' ')" = " 200 40 30 255" ] &&
        [ "$(head -c 4 "$work/fake-layers/flats.rgba" | od -An -tu1 | tr -s ' ')" = " 30 60 220 255" ]
}
check layers-two-in-order-flats-hidden fake_layers
error_reply() {
    "$run" colorize '{"sketch": {"frame": 1, "encoding": "png"}, "seed": -1}' "$work/x.png" "$art/umbrella-lineart.png"
    [ $? -eq 1 ]
}
check error-reply-exit-1 error_reply
no_daemon() {
    PAINTSD_ENDPOINT="ipc://$work/none.sock" "$run" ping '{}' "$work/x.png" 2>"$work/none.err"
    [ $? -eq 3 ] && grep -q "start one with" "$work/none.err"
}
check no-daemon-message no_daemon
killed_client() {
    # A long job: builtin undo previews, 64 frames of a 2048x2048 picture.
    python3 - "$work/big.png" <<'PY'
import struct, sys, zlib
w = h = 2048
rows = b"".join(b"\0" + bytes(((x * 3 + y * 5) % 256) for x in range(w * 3)) for y in range(h))
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))
PY
    "$run" undo.preview '{"image": {"frame": 1, "encoding": "png"}, "count": 64}' "$work/never.png" "$work/big.png" \
        >"$work/run.out" 2>&1 &
    local pid=$!
    # Generous deadlines: only the outcome counts, not how fast this machine is.
    for _ in $(seq 1200); do grep -q progress "$work/run.out" && break; sleep 0.05; done
    local job
    job=$(sed -n 's/^accepted //p' "$work/run.out")
    kill -9 $pid
    wait $pid 2>/dev/null
    [ -n "$job" ] || { echo "no job accepted"; cat "$work/run.out"; return 1; }
    for _ in $(seq 600); do
        "$bin/paintsctl" jobs "$job" --json | grep -q '"state":"cancelled"' && return 0
        sleep 0.1
    done
    "$bin/paintsctl" jobs "$job" --json
    return 1
}
check killed-client-job-cancelled killed_client
finish
