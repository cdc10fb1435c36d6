#!/usr/bin/env bash
# Debian's chromium for the browser tests of doseatlas review (tests/test_review_browser.py, Playwright drives it
# through executable_path; nothing downloads a browser at test time). Does nothing when it is already installed.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
else
    echo "setup_browser: no apt-get; install chromium yourself for the browser tests (they skip without it)" >&2
fi
