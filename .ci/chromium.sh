#!/usr/bin/env bash
# Install Debian's chromium (headless browser for the comments page test, and for the Prefect UI test
# tests/deploy/test_ui_browser.py through Playwright, pinned in the test extra) if it is missing.
# Idempotent; runs as root. Prints the browser path on stdout.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
    echo "chromium.sh: installing Debian's chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq chromium chromium-driver >&2
fi
echo /usr/bin/chromium
