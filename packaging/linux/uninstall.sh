#!/bin/sh
# Remove Parley installed by install.sh. Your conversations, document index, settings and API
# keys stay unless you pass --purge (then they are deleted too, keys from the OS keyring).
#
# Usage: ./uninstall.sh [--purge]      (also installed as ~/.local/opt/parley/uninstall.sh)
set -eu

purge=no
case "${1:-}" in
    "") ;;
    --purge) purge=yes ;;
    *) echo "usage: uninstall.sh [--purge]" >&2; exit 2 ;;
esac

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
opt="$HOME/.local/opt/parley"
bin="$HOME/.local/bin"
apps="$data_home/applications"
icons="$data_home/icons/hicolor"

if [ "$purge" = yes ]; then
    if [ -x "$opt/parley" ]; then
        # Keys Parley stored in the OS keyring ("parley keys status" lists where each is from).
        "$opt/parley" keys status 2>/dev/null | awk 'NR > 1 && $2 == "keyring" {print $1}' |
            while read -r provider; do "$opt/parley" keys clear "$provider" || true; done
    fi
    if [ -n "${PARLEY_HOME:-}" ]; then
        rm -rf "$PARLEY_HOME"
    fi
    rm -rf "${XDG_CONFIG_HOME:-$HOME/.config}/parley" \
        "$data_home/parley" \
        "${XDG_CACHE_HOME:-$HOME/.cache}/parley" \
        "${XDG_STATE_HOME:-$HOME/.local/state}/parley"
fi

if [ -L "$bin/parley" ] && [ "$(readlink "$bin/parley")" = "$opt/parley" ]; then
    rm -f "$bin/parley"
fi
rm -f "$apps/parley.desktop" "$icons/256x256/apps/parley.png" "$icons/scalable/apps/parley.svg"
rm -rf "$opt"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true

if [ "$purge" = yes ]; then
    echo "Parley removed, with its conversations, index, settings and keys."
else
    echo "Parley removed. Your conversations, index, settings and keys are kept;"
    echo "run uninstall.sh --purge to delete them too."
fi
