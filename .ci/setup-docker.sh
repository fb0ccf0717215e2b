# shellcheck shell=bash
# Sourced by .ci/run: give the tests a real Docker engine on a fresh machine (as root).
#
#   * installs docker.io, busybox-static and docker-compose from Debian when absent;
#   * starts a private dockerd (no iptables, no bridge, vfs storage) with its state
#     under /tmp and its API on a short unix socket;
#   * builds the small local image the tests run (`docker import` of a busybox rootfs:
#     no registry is reachable; containers use --network host and bind-mount the
#     host's /usr, /lib, /lib64, /etc, the Python prefix, the venv and the checkout);
#   * exports DOCKER_HOST and WSTRACE_REQUIRE_DOCKER=1, so Docker tests fail instead
#     of skipping.
#
# It is sourced under `set -euo pipefail`: everything runs inside a function
# called in an `||` list, so a failure here prints a warning and leaves Docker
# tests to skip (they say why) rather than aborting the whole run.
#
# Usable by hand too:  source .ci/setup-docker.sh   (then `docker ps` works).

WSTRACE_DOCKER_DIR="${WSTRACE_DOCKER_DIR:-/tmp/wsd}"
WSTRACE_DOCKER_IMAGE="${WSTRACE_DOCKER_IMAGE:-wstrace-base:test}"

_wsd_log() { echo "setup-docker: $*" >&2; }

_wsd_answers() {  # $1 = socket path
  [ -S "$1" ] && DOCKER_HOST="unix://$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
}

_wsd_install() {
  # docker-compose (v1, Debian's) lets a test run the example app as a real compose project
  if command -v dockerd >/dev/null 2>&1 && command -v busybox >/dev/null 2>&1 \
    && command -v docker-compose >/dev/null 2>&1; then
    return 0
  fi
  _wsd_log "installing docker.io busybox-static docker-compose"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || return 1
  apt-get install -y -qq docker.io busybox-static >/dev/null || return 1
  apt-get install -y -qq docker-compose >/dev/null || _wsd_log "docker-compose unavailable"
}

_wsd_start() {
  local sock="$WSTRACE_DOCKER_DIR/d.sock"
  if _wsd_answers "$sock"; then
    _wsd_log "reusing the engine at $sock"
    return 0
  fi
  mkdir -p "$WSTRACE_DOCKER_DIR/x" /tmp/wstrace-docker-data
  # Nothing answers on our socket: whatever a previous run left (socket, pidfile) is stale.
  rm -f "$sock" "$WSTRACE_DOCKER_DIR/dockerd.pid"
  _wsd_log "starting dockerd on unix://$sock (log: $WSTRACE_DOCKER_DIR/dockerd.log)"
  # setsid: the engine outlives this shell's job control; CI ends it with the run.
  setsid dockerd \
    --iptables=false --ip6tables=false --bridge=none \
    --storage-driver=vfs \
    --data-root /tmp/wstrace-docker-data \
    --exec-root "$WSTRACE_DOCKER_DIR/x" \
    --pidfile "$WSTRACE_DOCKER_DIR/dockerd.pid" \
    --host "unix://$sock" \
    >"$WSTRACE_DOCKER_DIR/dockerd.log" 2>&1 </dev/null &
  local i
  for i in $(seq 1 60); do
    if _wsd_answers "$sock"; then
      _wsd_log "engine answers after ~$((i / 2)) s"
      return 0
    fi
    sleep 0.5
  done
  _wsd_log "dockerd did not answer in 30 s; last lines of its log:"
  tail -n 20 "$WSTRACE_DOCKER_DIR/dockerd.log" >&2 || true
  return 1
}

_wsd_image() {
  if docker image inspect "$WSTRACE_DOCKER_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  local busybox root applet
  busybox="$(command -v busybox)" || return 1
  root="$(mktemp -d)"
  mkdir -p "$root"/{bin,tmp,proc,sys,dev,etc,usr,lib,lib64,root,work,run}
  chmod 1777 "$root/tmp"
  cp "$busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
  done
  tar -C "$root" -c . | docker import -m "wstrace test base (busybox)" - "$WSTRACE_DOCKER_IMAGE" >/dev/null
  local rc=$?
  rm -rf "$root"
  [ $rc -eq 0 ] && _wsd_log "built $WSTRACE_DOCKER_IMAGE"
  return $rc
}

_wsd_smoke() {  # a container runs the venv's python with the host mounts the tests use
  local py venv base here
  here="$(pwd)"
  venv="${WSTRACE_VENV:-$here/.venv}"
  [ -x "$venv/bin/python" ] || return 0  # ./run creates the venv later; the tests check again
  base="$("$venv/bin/python" -c 'import sys; print(sys.base_prefix)')"
  py="$(docker run --rm --network host \
    -v /usr:/usr:ro -v /lib:/lib:ro -v /lib64:/lib64:ro -v /etc:/etc:ro \
    -v "$base:$base:ro" -v "$here:$here:ro" -v "$venv:$venv:ro" \
    "$WSTRACE_DOCKER_IMAGE" "$venv/bin/python" -c 'import sys; print(sys.prefix)')" || return 1
  _wsd_log "a container ran $venv/bin/python (sys.prefix=$py)"
}

_wstrace_setup_docker() {
  _wsd_install || { _wsd_log "could not install docker.io"; return 1; }
  _wsd_start || return 1
  export DOCKER_HOST="unix://$WSTRACE_DOCKER_DIR/d.sock"
  _wsd_image || { _wsd_log "could not build $WSTRACE_DOCKER_IMAGE"; return 1; }
  _wsd_smoke || { _wsd_log "a container could not run the venv's python"; return 1; }
  export WSTRACE_REQUIRE_DOCKER=1 WSTRACE_DOCKER_IMAGE
  _wsd_log "DOCKER_HOST=$DOCKER_HOST WSTRACE_REQUIRE_DOCKER=1"
}

_wstrace_setup_docker || _wsd_log "WARNING: no Docker engine; Docker tests will be skipped"
