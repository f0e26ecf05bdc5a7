#!/usr/bin/env bash
# Node package checks, from a fresh clone with Node >= 20 and npm: install, debug build of the addon,
# generated files unchanged, node:test suite (includes the tsc --strict type test) on the machine's
# Node and on every other live LTS line, and an `npm pack` consumer round trip. Docker tests skip
# visibly without Docker unless DAGGER_SANDBOX_REQUIRE_DOCKER=1, which makes them fail instead.
#
# The other Node versions are the official binaries that npm's `node-<platform>-<arch>` package
# carries (bin/node), installed once into $DAGGER_SANDBOX_NODE_CACHE (default
# /var/tmp/dagger-sandbox-node/<version>) and reused. DAGGER_SANDBOX_NODE_VERSIONS overrides the
# pinned list (space-separated exact versions). The addon is built once: N-API is ABI-stable, so
# every Node loads the same .node file.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
node_versions=${DAGGER_SANDBOX_NODE_VERSIONS:-22.23.5 24.22.3}
node_cache=${DAGGER_SANDBOX_NODE_CACHE:-/var/tmp/dagger-sandbox-node}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== npm ci"
# A registry without some optional platform packages of @napi-rs/cli's own deps (@napi-rs/lzma-*,
# @napi-rs/tar-*: 404 on this workplace's registry) makes the lock unverifiable for `npm ci`; then
# install the locked versions without rewriting the lock.
if ! npm ci --no-audit --no-fund 2>/tmp/npm-ci.err; then
  echo "npm ci refused the lock ($(grep -m1 -o 'Missing: [^ ]*' /tmp/npm-ci.err || echo 'see npm output')); installing the locked versions with npm install --no-save"
  npm install --no-save --no-audit --no-fund
fi

echo "== napi build (debug)"
# Debug on purpose: tests must never rebuild release artifacts.
npx napi build --platform -p dagger-sandbox-node -o . --js binding.js --dts binding.d.ts

echo "== generated files unchanged"
for f in binding.js binding.d.ts index.js index.d.ts; do
  git ls-files --error-unmatch "$f" >/dev/null 2>&1 || echo "warning: $f is not committed yet, so it cannot be compared" >&2
done
git diff --exit-code -- binding.js binding.d.ts index.js index.d.ts \
  || { echo "the build changed committed generated files: rebuild and commit them" >&2; exit 1; }

# Prints the path of the official Node binary of version $1, installing it from npm on first use.
node_binary() {
  local version=$1 pkg dir bin
  pkg=$(node -p "'node-' + process.platform + '-' + process.arch")
  dir="$node_cache/$version"
  bin="$dir/node_modules/$pkg/bin/node"
  if [ "$("$bin" --version 2>/dev/null)" != "v$version" ]; then
    # Into a fresh directory first, so an interrupted download never leaves a half binary behind.
    rm -rf "$dir.partial" && mkdir -p "$dir.partial"
    npm install --prefix "$dir.partial" --no-save --no-package-lock --no-audit --no-fund --silent "$pkg@$version" >&2
    rm -rf "$dir" && mv "$dir.partial" "$dir"
  fi
  echo "$bin"
}

# Runs the node:test suite on the Node binary $1; appends its counts (from a TAP copy of the
# report) to $work/counts, and its label to $work/failed if it failed.
run_suite() {
  local bin=$1 version tap rc=0
  version=$("$bin" --version)
  tap="$work/tap-$version.txt"
  echo "== node tests on Node $version ($bin)"
  "$bin" --test --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$tap" __tests__/*.test.mjs || rc=$?
  printf 'Node %-9s %s\n' "$version" \
    "$(awk '/^# (tests|pass|fail|cancelled|skipped|todo) [0-9]+$/ { c[$2] = $3 } END { printf "tests %d  pass %d  fail %d  cancelled %d  skipped %d  todo %d", c["tests"], c["pass"], c["fail"], c["cancelled"], c["skipped"], c["todo"] }' "$tap")" \
    >>"$work/counts"
  [ "$rc" = 0 ] || echo "Node $version (exit $rc)" >>"$work/failed"
}

cargo build -p dagger-sandbox-cli --locked -q  # the daemon (debug) that __tests__/dashboard.test.mjs serves the dashboard from
run_suite "$(command -v node)"
for v in $node_versions; do
  run_suite "$(node_binary "$v")"
done
echo "== node test counts per version"
cat "$work/counts"
if [ -s "$work/failed" ]; then
  echo "the node:test suite failed on: $(paste -sd, "$work/failed")" >&2
  exit 1
fi

echo "== npm pack consumer check"
npm pack --silent --pack-destination "$work" >/dev/null
triple=$(node -e "const {platform,arch}=process; console.log(platform==='linux' ? platform+'-'+arch+'-gnu' : platform==='win32' ? platform+'-'+arch+'-msvc' : platform+'-'+arch)")
cp -r "npm/$triple" "$work/platform"
cp "dagger-sandbox.$triple.node" "$work/platform/"
(cd "$work/platform" && npm pack --silent --pack-destination "$work" >/dev/null)
mkdir "$work/consumer"
cd "$work/consumer"
echo '{"name":"consumer","private":true,"type":"module"}' >package.json
npm install --no-audit --no-fund --offline "$work"/dagger-sandbox-0*.tgz "$work"/dagger-sandbox-"$triple"-*.tgz >/dev/null
cat >main.ts <<'TS'
import { DaggerSandbox, SandboxError } from 'dagger-sandbox'
const sb = await DaggerSandbox.create({ backend: 'docker', image: 'dagger-sandbox-test/busybox:latest' })
await sb.writeFile('hello.txt', 'hi from the consumer')
const r = await sb.exec('cat hello.txt')
const child = await sb.fork()
const forked: string = await child.readFile('hello.txt')
await child.close()
await sb.close()
try {
  await sb.readFile('hello.txt')
} catch (e) {
  if (!(e instanceof SandboxError) || e.code !== 'CLOSED') throw e
}
if (r.stdout !== 'hi from the consumer' || forked !== r.stdout) throw new Error(`round trip failed: ${r.stdout}`)
console.log('consumer round trip ok')
TS
node "$root/node_modules/typescript/bin/tsc" --strict --target es2022 --module nodenext --moduleResolution nodenext \
  --lib es2022,esnext.disposable --types node --typeRoots "$root/node_modules/@types" main.ts
if docker version >/dev/null 2>&1 || [ "${DAGGER_SANDBOX_REQUIRE_DOCKER:-}" = 1 ]; then
  node main.js
else
  echo "SKIPPED consumer round trip: docker is not reachable"
fi
echo "node package checks passed"
