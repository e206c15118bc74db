#!/usr/bin/env bash
# Installs the paintsd Krita plug-in for this user and enables it (Krita 5, Linux). Usage: Bridges/krita/install.sh
# Honours $XDG_DATA_HOME and $XDG_CONFIG_HOME. Restart Krita afterwards; the docker is under Settings > Dockers > paintsd.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
config=${XDG_CONFIG_HOME:-$HOME/.config}
target="$data/krita/pykrita"
mkdir -p "$target/paintsd_krita" "$data/krita/actions"
cp "$here/paintsd_krita.desktop" "$target/"
cp "$here"/paintsd_krita/*.py "$target/paintsd_krita/"
cp "$here/../python/paintsd_client.py" "$target/paintsd_krita/"
# The shortcuts' .action file goes to one place only: Krita reads actions/ and also the plug-in's own folder, and a
# copy in both logs "Duplicated action name". Earlier versions of this script put one in the plug-in folder: removed.
cp "$here/paintsd_krita/paintsd_krita.action" "$data/krita/actions/"
rm -f "$target/paintsd_krita/paintsd_krita.action"
# Enable it: Krita reads [python] enable_<name>=true from kritarc.
rc="$config/kritarc"
mkdir -p "$config"
touch "$rc"
if ! grep -q '^enable_paintsd_krita=true' "$rc"; then
    if grep -q '^\[python\]' "$rc"; then
        sed -i '/^\[python\]/a enable_paintsd_krita=true' "$rc"
    else
        printf '\n[python]\nenable_paintsd_krita=true\n' >> "$rc"
    fi
fi
echo "installed the paintsd Krita plug-in in $target (enabled in $rc); restart Krita"
