#!/usr/bin/env bash
# Takes the README's screenshots from the real applications under Xvfb, against a real paintsd:
#   Bridges/krita/screenshot.png  (the paintsd docker after Colorize Layer)
#   Bridges/gimp/screenshot.png   (the Colorize Layer dialog over the sample line art)
# Needs xvfb, xauth, x11-apps and imagemagick besides Krita and GIMP. Both on a 1600x1000 screen (where the docker's
# status once drew over Krita's zoom indicator).
# Usage: Bridges/screenshots/take.sh BIN_DIR [krita|gimp|all]   (all by default)
set -euo pipefail
bin=${1:-.build/debug}
which=${2:-all}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${PAINTSD_ENDPOINT:-}" ]; then exec "$root/scripts/with-daemon.sh" "$bin" "$0" "$bin" "$which"; fi
work=$(mktemp -d /tmp/paintsd-shots.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Krita: the plug-in installed and enabled in a private profile, driven by the screenshot plug-in.
if [ "$which" != gimp ]; then
export XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"
"$root/Bridges/krita/install.sh" >/dev/null
cp -r "$root/Bridges/screenshots/paintsd_screenshot" "$root/Bridges/screenshots/paintsd_screenshot.desktop" "$XDG_DATA_HOME/krita/pykrita/"
sed -i '/^\[python\]/a enable_paintsd_screenshot=true' "$XDG_CONFIG_HOME/kritarc"
PAINTSD_ART="$root/Examples/art" PAINTSD_SHOT="$root/Bridges/krita/screenshot.png" \
    timeout 180 xvfb-run -a -s "-screen 0 1600x1000x24" krita --nosplash >"$work/krita.log" 2>&1 || true
test -s "$root/Bridges/krita/screenshot.png" || { tail -30 "$work/krita.log"; exit 1; }
# install.sh puts the shortcuts' .action file in one place: Krita must not find it twice.
if grep -q "Duplicated action name" "$work/krita.log"; then grep "Duplicated action name" "$work/krita.log"; exit 1; fi
grep -q "paintsd_colorize shortcut: Ctrl+Alt+K" "$work/krita.log" || { grep "shortcut" "$work/krita.log"; exit 1; }
[ "$which" = krita ] && { echo "wrote Bridges/krita/screenshot.png"; exit 0; }
fi

# GIMP: the sample line art open, the plug-in's dialog shown; the screen grabbed while it waits for OK.
export GIMP2_DIRECTORY="$work/gimp"
mkdir -p "$GIMP2_DIRECTORY"/{brushes,gradients,patterns,palettes,plug-ins,scripts}
make -s -C "$root/Bridges/gimp" install >/dev/null
Xvfb :77 -screen 0 1600x1000x24 >/dev/null 2>&1 &
xvfb=$!
sleep 1
DISPLAY=:77 gimp -n -d -f -b "(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$root/Examples/art/umbrella-lineart.png\" \"x\"))) (display (gimp-display-new image)) (hints (car (gimp-file-load-layer RUN-NONINTERACTIVE image \"$root/Examples/art/umbrella-hints.png\")))) (gimp-image-insert-layer image hints 0 -1) (gimp-item-set-name hints \"hints\") (gimp-image-set-active-layer image (vector-ref (cadr (gimp-image-get-layers image)) 1)) (plug-in-paintsd-colorize RUN-INTERACTIVE image (car (gimp-image-get-active-layer image)) -1 -1 \"\" \"\" -1 -1))" >"$work/gimp.log" 2>&1 &
gimp=$!
sleep 25
DISPLAY=:77 xwd -root -silent | /usr/bin/convert xwd:- -strip "$root/Bridges/gimp/screenshot.png"
kill $gimp $xvfb 2>/dev/null || true
wait 2>/dev/null || true
echo "wrote Bridges/krita/screenshot.png and Bridges/gimp/screenshot.png"
