#!/usr/bin/env bash
# Set up .venv with a Python >= 3.12 and the package installed (editable).
#   scripts/setup.sh          the package and its runtime dependencies
#   scripts/setup.sh --test   plus everything the test suite needs (Debian's chromium too)
# Safe to rerun: it reinstalls only when pyproject.toml has changed.
set -euo pipefail
cd "$(dirname "$0")/.."

is_new_enough() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }

find_python() {
  local candidate version
  for candidate in ${PYTHON:-} python3.14 python3.13 python3.12 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && is_new_enough "$candidate"; then
      command -v "$candidate"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for version in $(pyenv versions --bare 2>/dev/null | sort -rV); do
      candidate="$(pyenv root)/versions/$version/bin/python3"
      if [ -x "$candidate" ] && is_new_enough "$candidate"; then echo "$candidate"; return 0; fi
    done
  fi
  return 1
}

extras="[dask,ema]"
[ "${1:-}" = "--test" ] && extras="[dask,ema,test]"

if [ ! -x .venv/bin/python ] || ! is_new_enough .venv/bin/python; then
  python=$(find_python) || {
    echo "setup: no Python >= 3.12 found; install one (e.g. 'pyenv install 3.12' or 'apt-get install python3.12') or set PYTHON=/path/to/python3.12" >&2
    exit 1
  }
  echo "setup: creating .venv with $python ($("$python" --version))"
  rm -rf .venv
  "$python" -m venv .venv
fi

# The browser test (tests/test_viz_browser.py) drives Debian's Chromium through Playwright;
# Playwright's own browser download cannot work here.
if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the browser test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
      echo "setup: could not install chromium with apt-get; tests/test_viz_browser.py needs /usr/bin/chromium" >&2
  else
    echo "setup: /usr/bin/chromium is missing; tests/test_viz_browser.py needs it: run 'apt-get install chromium' as root" >&2
  fi
fi

stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)${extras}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".${extras}"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
