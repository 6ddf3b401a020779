#!/usr/bin/env bash
# ctest ui.browser: the web UI in headless chromium (ui/test/browser.test.mjs, node's test runner). Skips (77)
# and says why when Node, ui/node_modules (scripts/setup: npm ci) or Debian's chromium is missing, or when the
# binary was built without the UI.
# usage: browser.sh SOURCE_DIR IOGRID_BINARY SCREENSHOT_DIR [DRIVER_PROGRAM]
set -euo pipefail
src=$1 bin=$2 shots=$3 driver=${4:-}
skip() { echo "SKIP: $*"; exit 77; }
command -v node >/dev/null || skip "no node (scripts/setup installs Debian's nodejs)"
[ -d "$src/ui/node_modules/puppeteer-core" ] || skip "no ui/node_modules (scripts/setup runs npm ci in ui/)"
command -v chromium >/dev/null || [ -n "${IOGRID_CHROMIUM:-}" ] || skip "no chromium (scripts/setup installs Debian's)"
# A build without Node embeds the fallback page: nothing for these tests to drive.
if grep -qa "This iogrid was built without Node" "$bin"; then skip "this iogrid was built without the web UI (no Node at build time)"; fi
rm -rf "$shots"
mkdir -p "$shots"
cd "$src/ui"
IOGRID_BIN="$bin" IOGRID_DRIVER="$driver" IOGRID_SCREENSHOTS="$shots" node --test --test-reporter=spec test/browser.test.mjs
echo "screenshots: $shots"
