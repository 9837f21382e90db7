#!/usr/bin/env bash
# Idempotent setup steps for `make demo` and `make test`: deps | venv | images | all.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
IMAGE_CACHE=${IMAGE_CACHE:-/var/cache/sysbox-images}
# System packages: runtime needs, build tools, image builders, lxcfs and crun for the benchmarks,
# and Debian's containerd + dockerd, which the Docker tests start themselves (no systemd needed).
APT_PACKAGES=(runc fuse3 pkg-config gcc libc6-dev python3 python3-venv python3-dev uidmap
              debootstrap busybox-static file tar iptables kmod xfsprogs lxcfs iproute2 util-linux
              docker.io containerd crun podman conmon skopeo umoci containernetworking-plugins
              strace vagrant vagrant-libvirt openssh-client)

say() { printf '[setup] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then say "must run as root (system containers need it)"; exit 1; fi
}

deps() {
  need_root
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "system packages already installed (${#APT_PACKAGES[@]} checked)"
    return
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "installed ${#missing[@]} packages"
}

compile_sources() {
  # sysbox-runc starts on every containerd call: ship its bytecode, so a caller with
  # PYTHONDONTWRITEBYTECODE (or a read-only tree) does not recompile ~20 ms of modules each time.
  "$VENV/bin/python" -m compileall -q sysbox >/dev/null
}

install_launcher() {  # the sh front end (sysbox/data/sysbox-runc), rewritten each time: it may have changed
  "$VENV/bin/python" -m sysbox.launcher "$VENV/bin/sysbox-runc"
}

venv() {
  local stamp="$VENV/.sysbox-installed"
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then
    say "venv $VENV already set up, reusing it"
    install_launcher
    compile_sources
    return
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating venv $VENV"
    /usr/bin/python3 -m venv "$VENV"
  fi
  say "installing sysbox (editable) and test extras into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
  "$VENV/bin/python" -c 'import sysbox, trio, jsonschema, pytest, xdist, hypothesis, grpc, kubernetes_validate' \
    && "$VENV/bin/ruff" --version >/dev/null && "$VENV/bin/mypy" --version >/dev/null \
    || { say "venv install failed"; exit 1; }
  install_launcher
  compile_sources
  touch "$stamp"
}

images() {
  need_root
  local names=(${SYSBOX_IMAGES:-busybox})
  "$VENV/bin/sysbox" image build --cache "$IMAGE_CACHE" "${names[@]}"
}

case "${1:-all}" in
  deps) deps ;;
  venv) venv ;;
  images) images ;;
  all) deps; venv; images ;;
  *) echo "usage: $0 deps|venv|images|all" >&2; exit 2 ;;
esac
