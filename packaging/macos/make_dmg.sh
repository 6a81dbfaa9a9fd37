#!/bin/sh
# Make dist/Parley-<version>-macos-<arch>.dmg from dist/Parley.app (built by
# packaging/build.py on macOS): a compressed disk image showing Parley.app beside a link to
# /Applications, so installing is a drag.
#
# Signing and notarization are driven by environment variables and skipped when unset:
#   CODESIGN_IDENTITY  "Developer ID Application: Name (TEAMID)" in the keychain. The spec
#                      already signed Parley.app with it (hardened runtime; MACOS_ENTITLEMENTS
#                      for the entitlements); here the .dmg is signed too.
#   NOTARY_PROFILE     a notarytool keychain profile (`xcrun notarytool store-credentials`):
#                      the .dmg is submitted, waited for, and the ticket stapled to it.
#
# Usage: packaging/macos/make_dmg.sh [path/to/Parley.app]
set -eu

repo=$(cd "$(dirname "$0")/../.." && pwd)
app=${1:-"$repo/dist/Parley.app"}
[ -d "$app" ] || { echo "make_dmg.sh: no app at $app (run packaging/build.py first)" >&2; exit 1; }
command -v hdiutil >/dev/null || { echo "make_dmg.sh: needs macOS (hdiutil)" >&2; exit 1; }

version=$(/usr/libexec/PlistBuddy -c "Print CFBundleShortVersionString" "$app/Contents/Info.plist")
arch=${TARGET_ARCH:-$(uname -m)}
dmg="$repo/dist/Parley-$version-macos-$arch.dmg"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$app" "$stage/Parley.app"
ln -s /Applications "$stage/Applications"
rm -f "$dmg"
hdiutil create -volname "Parley $version" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$dmg"

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    codesign --force --timestamp --sign "$CODESIGN_IDENTITY" "$dmg"
else
    echo "make_dmg.sh: not signed (CODESIGN_IDENTITY unset)"
fi
if [ -n "${NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$dmg" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$dmg"
else
    echo "make_dmg.sh: not notarized (NOTARY_PROFILE unset)"
fi
echo "$dmg"
