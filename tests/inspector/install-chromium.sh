#!/usr/bin/env bash
# What the inspector's browser test needs: Debian's chromium and chromedriver (.ci/run calls this before
# `make test`). Idempotent. Where it cannot install them (not root, no apt-get, no package index), it says
# so and exits 0: the browser test then skips with the reason.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  echo "install-chromium: chromium and chromedriver are already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-chromium: SKIPPED: needs root and apt-get; the inspector's browser test will skip" >&2
  exit 0
fi
# fonts-noto-cjk: the Chinese model's texts render as characters, not boxes, in the screenshots.
if ! { apt-get update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-noto-cjk >/dev/null; }; then
  echo "install-chromium: apt-get could not install chromium; the inspector's browser test will skip" >&2
fi
exit 0
