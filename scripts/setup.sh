#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Python packages from requirements.txt, and Debian's chromium
# (kaleido's static export and the Playwright browser tests drive it; nothing downloads a browser of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements.txt
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium fonts-liberation fonts-dejavu-core >/dev/null
fi
# the paper template's only font family (Greek and math symbols included): DejaVu Serif
if ! fc-list 2>/dev/null | grep -q "DejaVu Serif"; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get install -y -qq fonts-dejavu-core >/dev/null
fi
