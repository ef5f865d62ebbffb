#!/usr/bin/env bash
# macOS: sign (placeholder) and wrap dist/Desktop Chat.app into dist/DesktopChat-<version>.dmg.
# Untested here: only the Linux bundle is built and checked in this repository's CI.
#
# Signing: set MACOS_SIGN_IDENTITY ("Developer ID Application: ...") to sign with the hardened runtime; without it
# the app is ad-hoc signed ("-"), which runs on the build machine but is blocked by Gatekeeper elsewhere.
# Notarization placeholder: with a signed app, run
#   xcrun notarytool submit dist/DesktopChat-$VERSION.dmg --apple-id "$APPLE_ID" --team-id "$TEAM_ID" \
#     --password "$APP_PASSWORD" --wait && xcrun stapler staple dist/DesktopChat-$VERSION.dmg
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${1:-0.1.0}
APP="dist/Desktop Chat.app"
test -d "$APP" || { echo "$APP is missing: run pyinstaller build.spec on macOS first" >&2; exit 1; }
codesign --force --deep --options runtime --timestamp=none --sign "${MACOS_SIGN_IDENTITY:--}" "$APP"
codesign --verify --deep --strict "$APP"
stage=$(mktemp -d)
cp -R "$APP" "$stage/"
ln -s /Applications "$stage/Applications"
hdiutil create -volname "Desktop Chat" -srcfolder "$stage" -ov -format UDZO "dist/DesktopChat-$VERSION.dmg"
rm -rf "$stage"
echo "dist/DesktopChat-$VERSION.dmg"
