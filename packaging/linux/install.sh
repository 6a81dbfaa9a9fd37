#!/bin/sh
# Install Parley for the current user (no root): the program under ~/.local/opt/parley, a
# menu entry in ~/.local/share/applications, the icon in the hicolor theme, and a `parley`
# command in ~/.local/bin. Run it again (from a newer download) to upgrade in place; your
# conversations, index, settings and keys are never touched (they live elsewhere).
#
# Usage: ./install.sh            (from the unpacked Parley-<version>-linux-x86_64 folder)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src="$here/parley"
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
opt="$HOME/.local/opt/parley"
bin="$HOME/.local/bin"
apps="$data_home/applications"
icons="$data_home/icons/hicolor"

if [ ! -x "$src/parley" ] || [ ! -d "$src/_internal" ]; then
    echo "install.sh: no Parley build next to this script (expected $src/parley)" >&2
    exit 1
fi
if [ "$src" = "$opt" ]; then
    echo "install.sh: run the install.sh from the downloaded folder, not the installed one" >&2
    exit 1
fi

# Upgrade in place: copy the new build beside the old one, then swap the two folders, so an
# interrupted copy never leaves a half-installed Parley behind.
mkdir -p "$(dirname "$opt")" "$bin" "$apps" "$icons/256x256/apps" "$icons/scalable/apps"
rm -rf "$opt.new" "$opt.old"
cp -a "$src" "$opt.new"
if [ -e "$opt" ]; then
    mv "$opt" "$opt.old"
    action=upgraded
else
    action=installed
fi
mv "$opt.new" "$opt"
rm -rf "$opt.old"
cp "$here/uninstall.sh" "$opt/uninstall.sh"

resources="$opt/_internal/parley/resources"
cp "$resources/parley.png" "$icons/256x256/apps/parley.png"
cp "$resources/parley.svg" "$icons/scalable/apps/parley.svg"

# The menu entry: the template with the program's absolute path (quoted: the Desktop Entry
# spec's rule for paths with spaces).
sed -e "s|^Exec=.*|Exec=\"$opt/parley\"|" \
    -e "s|^TryExec=.*|TryExec=$opt/parley|" \
    -e '/^#/d' \
    "$here/parley.desktop" > "$apps/parley.desktop.tmp"
mv "$apps/parley.desktop.tmp" "$apps/parley.desktop"

ln -sfn "$opt/parley" "$bin/parley"

# Refresh the desktop's caches where the tools exist (menus pick the entry up without them too).
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t -f "$icons" || true

version=$("$opt/parley" --version 2>/dev/null || echo "parley (version unknown)")
echo "$version $action in $opt"
echo "menu entry: $apps/parley.desktop"
case ":${PATH:-}:" in
    *":$bin:"*) echo "command: parley" ;;
    *) echo "command: $bin/parley (add $bin to your PATH to type just 'parley')" ;;
esac
