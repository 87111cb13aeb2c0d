#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Python packages from requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r requirements.txt
