#!/usr/bin/env bash
# The Krita plug-in's own code paths inside real Krita (kritarunner, offscreen) against a real paintsd; then the checks
# of the report the script wrote (kritarunner exits 0 even when the script fails). Usage: Tests/bridges/krita.sh BIN_DIR
set -uo pipefail
bin=${1:-.build/debug}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PAINTSD_ENDPOINT:-}" ]; then exec "$root/scripts/with-daemon.sh" "$bin" "$0" "$bin"; fi
work=$(mktemp -d /tmp/paintsd-krita.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/xdg-runtime" "$work/config" "$work/data" "$work/out"
chmod 700 "$work/xdg-runtime"
env -u DISPLAY QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$work/xdg-runtime" XDG_CONFIG_HOME="$work/config" \
    XDG_DATA_HOME="$work/data" PYTHONPATH="$root/Bridges/python:$root/Bridges/krita:$root/Tests/bridges" \
    timeout 300 kritarunner -s krita_test "$work/report.json" "$root/Examples/art" "$work/out" >"$work/krita.log" 2>&1
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
print(f"krita: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
