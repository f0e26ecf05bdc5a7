#!/usr/bin/env bash
# Property-based run of the daemon's OpenAPI document (schemathesis, every check) against a real
# daemon: `dagger-sandbox serve` on a temp state dir and port, the Docker engine, templates pointed
# at the local test image so no create waits on a registry. Every container the daemon made is
# removed afterwards, and the run fails if one was left.
#
# schemathesis is installed with pip into a venv kept between runs (SCHEMATHESIS_VENV, default
# /var/tmp/dagger-sandbox-venv). SCHEMATHESIS_MAX_EXAMPLES bounds the cases per operation (default
# 300: 1 to 3 minutes on 2 cores); SCHEMATHESIS_SEED makes a run repeatable.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=${SCHEMATHESIS_VENV:-/var/tmp/dagger-sandbox-venv}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-300}
BUSYBOX=dagger-sandbox-test/busybox:latest
OWNER_LABEL=dev.dagger-sandbox.owner

if ! docker image inspect "$BUSYBOX" >/dev/null 2>&1; then
  if [ "${DAGGER_SANDBOX_REQUIRE_DOCKER:-}" = 1 ]; then
    echo "FAIL: DAGGER_SANDBOX_REQUIRE_DOCKER=1 but Docker or $BUSYBOX is missing (run scripts/engine.sh)" >&2
    exit 1
  fi
  echo "SKIPPED schemathesis: no Docker engine or $BUSYBOX (run scripts/engine.sh)"
  exit 0
fi

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian ships venv (and its pip) as a package of its own.
    [ "$(id -u)" = 0 ] || { echo "python3 -m venv fails and this is not root: install python3-venv" >&2; exit 1; }
    rm -rf "$VENV"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >/dev/null 2>&1 \
      || { DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
           DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv >/dev/null; }
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# One authenticated request to the daemon (no curl on a fresh Debian): METHOD PATH.
api() {
  python3 - "$1" "$BASE$2" "$TOKEN" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[2], method=sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[3]})
print(urllib.request.urlopen(req, timeout=60).read().decode())
PY
}

cargo build -p dagger-sandbox-cli --locked -q
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
BIN=$target/debug/dagger-sandbox

WORK=$(mktemp -d -t dsb-schemathesis-XXXXXX)
STATE=$WORK/state
mkdir -m 700 "$STATE"
STATE=$(cd "$STATE" && pwd -P)
OWNER="daemon:$STATE"
# Every template (and so every create that names one) uses the local test image.
cat >"$STATE/templates.json" <<EOF
{"node": {"image": "$BUSYBOX"}, "python": {"image": "$BUSYBOX"}, "base": {"image": "$BUSYBOX"}}
EOF

DAEMON_PID=
finish() {
  status=$?
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  # Sessions outlive a daemon on purpose; the ones this run made must not outlive the run.
  left=$(docker ps -aq --filter "label=$OWNER_LABEL=$OWNER")
  if [ -n "$left" ]; then
    echo "removing containers left by the run: $left" >&2
    # shellcheck disable=SC2086
    docker rm -f -v $left >/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap finish EXIT

"$BIN" --state-dir "$STATE" serve --addr 127.0.0.1:0 --max-sandboxes 16 --reap-interval 2s \
  >"$WORK/daemon.out" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 1 300); do
  [ -s "$STATE/daemon.json" ] && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; exit 1; }
  sleep 0.1
done
ADDR=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["addr"])' "$STATE/daemon.json")
TOKEN=$(cat "$STATE/token")
BASE=http://$ADDR
echo "daemon pid $DAEMON_PID on $BASE (state dir $STATE)"

seed_args=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed_args=(--seed "$SCHEMATHESIS_SEED")
set +e
# From the temp dir: schemathesis keeps a cache of the failures it found in its working directory.
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$OLDPWD/scripts/schemathesis.toml" run "$BASE/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $TOKEN" \
  --max-examples "$MAX_EXAMPLES" \
  --workers 2 \
  --request-timeout 90 \
  --generation-database none \
  --no-color "${seed_args[@]}") | tee "$WORK/schemathesis.out"
result=${PIPESTATUS[0]}
set -e

# The run must leave the daemon alive, answering, and able to stop everything it made.
kill -0 "$DAEMON_PID" 2>/dev/null || { echo "FAIL: the daemon died during the run" >&2; tail -50 "$WORK/daemon.log" >&2; exit 1; }
health=$(api GET /api/health)
echo "daemon still healthy: $health"
# "Test cases: N generated, M passed, ..." from schemathesis' summary: the figure quoted for the REST surface.
cases=$(grep -A1 '^Test cases:' "$WORK/schemathesis.out" | grep -oE '[0-9]+ generated' | grep -oE '[0-9]+' || echo 0)
passed=$(grep -A1 '^Test cases:' "$WORK/schemathesis.out" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || echo 0)
echo "REST hostile inputs (schemathesis cases): $cases, answered as documented: $passed"
api DELETE /api/sandbox >/dev/null
left=$(docker ps -aq --filter "label=$OWNER_LABEL=$OWNER")
if [ -n "$left" ]; then
  echo "FAIL: containers left after DELETE /api/sandbox: $left" >&2
  exit 1
fi
echo "containers left by the run: 0"
if [ "$result" -ne 0 ]; then
  # What the daemon logged about failed requests, without the failures the run provokes on purpose.
  grep -aE "WARN|ERROR" "$WORK/daemon.log" | grep -avE "pulling image|no dagger engine|serving .* failed|service exited" \
    | tail -30 >&2 || true
fi
exit "$result"
