#!/usr/bin/env bash
# Node package checks, from a fresh clone with Node >= 20 and npm: install, debug build of the addon,
# generated files unchanged, node:test suite (includes the tsc --strict type test), and an
# `npm pack` consumer round trip. Docker tests skip visibly without Docker unless
# DAGGER_SANDBOX_REQUIRE_DOCKER=1, which makes them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

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

echo "== node tests"
cargo build -p dagger-sandbox-cli --locked -q  # the daemon (debug) that __tests__/dashboard.test.mjs serves the dashboard from
node --test __tests__/*.test.mjs

echo "== npm pack consumer check"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
