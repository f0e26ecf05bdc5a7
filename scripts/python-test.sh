#!/usr/bin/env bash
# Python package checks (clients/python, distribution `dagger-sandbox`): debug build of the bridge,
# a venv kept between runs with the package installed editable plus its pinned test tools, a
# non-editable install (the wheel must carry py.typed), `mypy --strict` on the package, then pytest
# against the real bridge and Docker engine, with the counts at the end. Docker tests skip visibly
# without Docker unless DAGGER_SANDBOX_REQUIRE_DOCKER=1, which makes them fail instead.
#
# The venv is $DAGGER_SANDBOX_PY_VENV, default /var/tmp/dagger-sandbox-venv-py/<checkout id>: one per
# checkout, because an editable install points at one checkout's sources. It is reinstalled when
# clients/python/pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=${DAGGER_SANDBOX_PY_VENV:-/var/tmp/dagger-sandbox-venv-py/$(printf %s "$root" | sha1sum | cut -c1-12)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== python: bridge (debug)"
cargo build -p dagger-sandbox-bridge --locked -q
target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target="$root/$target" ;; esac
export DAGGER_SANDBOX_BRIDGE="$target/debug/dagger-sandbox-bridge"

echo "== python: venv $venv"
stamp="$venv/.dagger-sandbox-installed"
want="$root $(sha1sum clients/python/pyproject.toml | cut -c1-40)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "clients/python[test]"
  echo "$want" >"$stamp"
fi
"$venv/bin/python" -c 'import sys, dagger_sandbox; print("python", sys.version.split()[0], "dagger_sandbox", dagger_sandbox.__version__, "from", dagger_sandbox.__file__)'

echo "== python: non-editable install"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --target "$work/site" ./clients/python
test -f "$work/site/dagger_sandbox/py.typed" || { echo "the installed package lacks py.typed" >&2; exit 1; }
(cd "$work" && PYTHONPATH="$work/site" "$venv/bin/python" -c 'import dagger_sandbox, sys; assert dagger_sandbox.__file__.startswith(sys.argv[1]), dagger_sandbox.__file__' "$work/site")

echo "== python: mypy --strict"
(cd clients/python && "$venv/bin/mypy")

echo "== python: pytest"
rc=0
(cd clients/python && "$venv/bin/pytest" -p no:cacheprovider -q -rs --junitxml="$work/junit.xml" tests) || rc=$?
"$venv/bin/python" - "$work/junit.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
s = ET.parse(sys.argv[1]).getroot()
s = s if s.tag == "testsuite" else s.find("testsuite")
n, f, e, k = (int(s.get(a, 0)) for a in ("tests", "failures", "errors", "skipped"))
print(f"python tests {n}  pass {n - f - e - k}  fail {f + e}  skipped {k}")
PY
exit "$rc"
