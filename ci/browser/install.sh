#!/usr/bin/env bash
# Installs what tests/browser needs beyond the [dev] extra (which brings
# JupyterLab and Playwright's Python package): Debian's chromium.
# Without root or apt the browser tests skip with a reason; CI goes on.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "ci/browser: chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || true)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ci/browser: cannot install chromium here (needs root and apt-get); browser tests will be skipped"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium
echo "ci/browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
