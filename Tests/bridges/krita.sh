#!/usr/bin/env bash
# The Krita plug-in's own code paths inside real Krita (kritarunner, on Xvfb) against a real paintsd; then the checks
# of the report the script wrote (kritarunner exits 0 even when the script fails). Usage: Tests/bridges/krita.sh BIN_DIR
set -uo pipefail
bin=${1:-.build/debug}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PAINTSD_ENDPOINT:-}" ]; then exec "$root/scripts/with-daemon.sh" "$bin" "$0" "$bin"; fi
work=$(mktemp -d /tmp/paintsd-krita.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/xdg-runtime" "$work/config" "$work/data" "$work/out"
chmod 700 "$work/xdg-runtime"
# The docker's checks need a Krita window (views, the active layer, Edit > Undo): kritarunner on a virtual display.
# They start a second daemon of their own, late, at $work/late (nothing listens there when the docker starts).
# kritarunner may crash on its way out after a window was opened; the report is written before, and its exit code
# never counted (it exits 0 when the script fails, too).
"$root/scripts/install-deps.sh" xvfb xauth >&2 || true
paintsd=$(cd "$bin" && pwd)/paintsd
# Krita's OpenGL canvas needs shaders that kritarunner does not load (it crashes drawing the window): no OpenGL.
printf '[General]\nOpenGLRenderer=none\n' >"$work/config/kritadisplayrc"
XDG_RUNTIME_DIR="$work/xdg-runtime" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
    PYTHONPATH="$root/Bridges/python:$root/Bridges/krita:$root/Tests/bridges" \
    timeout 400 xvfb-run -a -s "-screen 0 1600x1000x24" \
    kritarunner -s krita_test "$work/report.json" "$root/Examples/art" "$work/out" "$paintsd" "$work/late" \
    >"$work/krita.log" 2>&1
/usr/bin/python3 - "$work/report.json" "$work/krita.log" <<'PY'
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    print("FAIL krita-report: no report written; Krita's log:")
    print(open(sys.argv[2]).read()[-3000:])
    print("krita: 0 passed, 1 failed")
    sys.exit(1)
if "exception" in report:
    print("FAIL krita-script:\n" + report["exception"])
    print("krita: 0 passed, 1 failed")
    sys.exit(1)
passed = failed = 0
for name, value in report["checks"].items():
    if isinstance(value, bool):
        print(("ok   " if value else "FAIL ") + "krita-" + name)
        passed, failed = passed + value, failed + (not value)
    else:
        print(f"     {name}: {value}")
if failed:
    print("     Krita's log ends:\n" + "".join("     " + line for line in open(sys.argv[2]).readlines()[-15:]))
print(f"krita: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
