#!/usr/bin/env bash
# Linux: wrap the onedir bundle dist/desktop-chat/ into dist/desktop-chat-<version>-linux-<arch>.tar.gz
# (with a .desktop file). Symlinks in llama_cpp/lib are kept as symlinks (tar does), so nothing is duplicated.
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=${1:-0.1.0}
test -x dist/desktop-chat/desktop-chat || { echo "run make dist first" >&2; exit 1; }
cp packaging/linux/desktop-chat.desktop dist/desktop-chat/
out="dist/desktop-chat-$VERSION-linux-$(uname -m).tar.gz"
tar -C dist -czf "$out" desktop-chat
du -h "$out"
