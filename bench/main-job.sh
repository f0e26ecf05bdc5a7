#!/usr/bin/env bash
# The main job's cost, printed in one run (a benchmark, not a test): `dagger-sandbox validate` of the
# 184-package Express fixture (tests/fixtures/node/express-api) on Docker with official Node 22,
# cold (empty dependency caches), warm (caches filled by the cold run) and the raw Docker baseline
# `docker run --rm -v project:/w IMAGE sh -c 'npm ci && npm test'`, each BENCH_ROUNDS times
# (default 3), interleaved so engine and registry noise hit all three alike. Prints median and max
# wall time, and the install step's own time. Both install with `npm ci --no-audit --no-fund`.
# validate's wall time ends when its sandbox is killed: the engine deletes the installed
# node_modules afterwards (the sandbox is disposable). The raw run leaves node_modules in the
# project directory, so a fourth row adds deleting it on the host. The registry's speed through
# this network swings the install step by seconds between rounds, so "wall minus install" shows
# what each run costs besides the install itself (sandbox, copy, tests, removal).
#
# Run: bash scripts/engine.sh && cargo build -p dagger-sandbox-cli && bash bench/main-job.sh
# The caches live in a namespace of their own (DAGGER_SANDBOX_CACHE_NAMESPACE), removed at the end;
# each cold round prunes it first. Network on; the host's CAs are trusted (--ca-certificates host).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${BENCH_ROUNDS:-3}
IMAGE=dagger-sandbox-test/node:22
BIN=${BENCH_BIN:-target/debug/dagger-sandbox}
FIXTURE=tests/fixtures/node/express-api
export DAGGER_SANDBOX_CACHE_NAMESPACE="bench-$$"
work=$(mktemp -d)
trap 'rm -rf "$work"; "$BIN" cache prune >/dev/null 2>&1 || true' EXIT
ca=$(python3 -c 'import os; p=os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"; print(p)')

now() { date +%s%N; }
validate() { # prints "wall_ms install_ms cache"
  local t0 t1 json
  t0=$(now)
  json=$("$BIN" validate "$FIXTURE" --backend docker --image "$IMAGE" --network --ca-certificates host --json)
  t1=$(now)
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["passed"], r; i=[s for s in r["steps"] if s["name"]=="install"][0]; print(sys.argv[2], i["durationMs"], r["nodeModulesCache"])' \
    "$json" "$(( (t1 - t0) / 1000000 ))"
}
raw() { # prints "wall_ms install_ms -" and, into $work/clean, the wall time including the cleanup
  local t0 t1 t2 out
  rm -rf "$work/p" && cp -r "$FIXTURE" "$work/p"
  t0=$(now)
  out=$(docker run --rm -v "$work/p:/w" -w /w -v "$ca:/ca.pem:ro" -e NODE_EXTRA_CA_CERTS=/ca.pem "$IMAGE" \
    sh -c 's=$(date +%s%N); npm ci --no-audit --no-fund >/dev/null 2>&1; e=$(date +%s%N); npm test >/dev/null 2>&1 && echo $(( (e - s) / 1000000 ))')
  t1=$(now)
  # The raw run leaves node_modules in the project; validate leaves nothing, and deleting the
  # installed tree is part of its time. This is the same deletion on the host.
  rm -rf "$work/p/node_modules"
  t2=$(now)
  echo "$(( (t2 - t0) / 1000000 )) $out -" >>"$work/clean"
  echo "$(( (t1 - t0) / 1000000 )) $out -"
}

declare -a cold warm rawr
for i in $(seq 1 "$ROUNDS"); do
  "$BIN" cache prune >/dev/null
  cold+=("$(validate)")
  warm+=("$(validate)")
  rawr+=("$(raw)")
  echo "round $i: cold ${cold[-1]} | warm ${warm[-1]} | raw ${rawr[-1]}" >&2
done

summary() { # NAME ROWS...: median and max of wall and install
  local name=$1; shift
  python3 - "$name" "$@" <<'PY'
import statistics, sys
name, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
wall = sorted(int(r[0]) for r in rows); inst = sorted(int(r[1]) for r in rows)
extra = sorted(set(r[2] for r in rows) - {"-"})
rest = sorted(int(r[0]) - int(r[1]) for r in rows)
print(f"| {name} | {statistics.median(wall)/1000:.2f} s | {max(wall)/1000:.2f} s | {statistics.median(inst)/1000:.2f} s | {statistics.median(rest)/1000:.2f} s | {', '.join(extra) or '-'} |")
PY
}
echo
echo "main job: validate $FIXTURE ($(python3 -c 'import json; l=json.load(open("'"$FIXTURE"'/package-lock.json")); print(len([k for k in l["packages"] if k]))') locked packages) on Docker, $IMAGE, $ROUNDS rounds, $(nproc) CPUs"
echo "| run | wall p50 | wall max | install step p50 | wall minus install, p50 | node_modules store |"
echo "| --- | --- | --- | --- | --- | --- |"
summary "validate, cold (empty caches)" "${cold[@]}"
summary "validate, warm (caches filled)" "${warm[@]}"
summary "raw docker run: npm ci && npm test" "${rawr[@]}"
mapfile -t rawc <"$work/clean"
summary "raw, plus deleting the node_modules it left" "${rawc[@]}"
