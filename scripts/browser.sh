#!/usr/bin/env bash
# Makes Debian's headless-capable `chromium` available at /usr/bin/chromium for the dashboard's
# browser test (__tests__/dashboard.test.mjs, driven by playwright-core, which downloads no browser).
# Installing needs root and the Debian apt mirror. When it cannot be installed, this says why and
# exits 0 so the test skips visibly, unless DAGGER_SANDBOX_REQUIRE_DOCKER=1 (CI), which makes a
# missing browser a failure.
set -euo pipefail

chromium=/usr/bin/chromium
fail() {
  echo "browser: $*" >&2
  if [ "${DAGGER_SANDBOX_REQUIRE_DOCKER:-}" = 1 ]; then
    echo "browser: DAGGER_SANDBOX_REQUIRE_DOCKER=1, so a missing browser is a failure" >&2
    exit 1
  fi
  echo "browser: the dashboard browser test will be SKIPPED" >&2
  exit 0
}

if [ -x "$chromium" ]; then
  echo "== browser: $("$chromium" --version 2>/dev/null || echo "$chromium")"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || fail "$chromium is missing and apt-get is not available: install Chromium so that $chromium exists"
[ "$(id -u)" = 0 ] || fail "$chromium is missing and installing it needs root: run 'apt-get install -y --no-install-recommends chromium' as root"

echo "== browser: installing Debian's chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/tmp/browser-apt.log 2>&1 || fail "apt-get update failed (see /tmp/browser-apt.log): $(tail -n 3 /tmp/browser-apt.log)"
apt-get install -y -qq --no-install-recommends chromium >>/tmp/browser-apt.log 2>&1 \
  || fail "apt-get install chromium failed (see /tmp/browser-apt.log): $(tail -n 3 /tmp/browser-apt.log)"
[ -x "$chromium" ] || fail "apt-get installed chromium but $chromium does not exist"
echo "== browser: $("$chromium" --version 2>/dev/null || echo "$chromium installed")"
