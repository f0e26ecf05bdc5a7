#!/usr/bin/env bash
# Tests the Go client (clients/go) on this machine, a fresh Debian 12 one included: builds the
# bridge, then runs gofmt, go vet and go test -race against the real bridge and Docker engine,
# and prints the counts. Any Go >= 1.19 will do (go.mod says go 1.19): the machine's, else
# Debian's golang-go, installed here. No toolchain is ever downloaded (GOTOOLCHAIN=local).
#
# DAGGER_SANDBOX_REQUIRE_DOCKER=1 turns the Docker tests' skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== go client (clients/go)"

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "go not found: installing Debian's golang-go"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go
  fi
fi
if ! command -v gcc >/dev/null 2>&1; then # go test -race needs cgo
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q gcc libc6-dev
fi
export GOTOOLCHAIN=local CGO_ENABLED=1
go version

cargo build -p dagger-sandbox-bridge --locked -q
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
export DAGGER_SANDBOX_BRIDGE="$target/debug/dagger-sandbox-bridge"

cd clients/go
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
  echo "gofmt: not formatted: $unformatted" >&2
  exit 1
fi
go vet ./...
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
go test -race -count=1 -v ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
echo "go: $passed passed, $failed failed, $skipped skipped"
exit "$status"
