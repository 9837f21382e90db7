#!/bin/bash
# Runs in the installer DaemonSet's pod (deploy/k8s/installer.yaml), with the node's root at
# $HOST_ROOT.  Idempotent: a restarted pod redoes each step and finds it done.
#
#   1. copy this package to $HOST_ROOT/opt/sysbox
#   2. on the host (chroot): apt packages and venv (scripts/setup.sh), systemd units, daemons
#   3. register sysbox-runc with the node's CRI runtime: CRI-O if present, else containerd
#   4. restart that runtime, mark the node ready (file + node label)
#
# Steps that need a real node can be skipped, which is how the tests run it against a
# directory: SYSBOX_INSTALL_SKIP="setup systemd restart label" (any subset).
set -euo pipefail

HOST_ROOT=${HOST_ROOT:-/host}
SRC=${SYSBOX_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DEST=/opt/sysbox                        # as the host sees it
SYSBOX=${SYSBOX:-sysbox}                # the installer's own `sysbox` command
SKIP=" ${SYSBOX_INSTALL_SKIP:-} "
HOST_BIN=$DEST/.venv/bin/sysbox-runc

say() { printf '[sysbox-installer] %s\n' "$*" >&2; }
skip() { [[ "$SKIP" == *" $1 "* ]]; }
on_host() { chroot "$HOST_ROOT" "$@"; }

[ -d "$HOST_ROOT" ] || { say "HOST_ROOT $HOST_ROOT: no such directory"; exit 1; }

say "copying the package to $HOST_ROOT$DEST"
mkdir -p "$HOST_ROOT$DEST"
tar -C "$SRC" --exclude=.venv --exclude=.git --exclude=__pycache__ -cf - . | tar -C "$HOST_ROOT$DEST" -xf -

if skip setup; then say "skipping host setup"; else
  say "setting up packages and venv on the host"
  on_host "$DEST/scripts/setup.sh" deps
  on_host "$DEST/scripts/setup.sh" venv
fi

if skip systemd; then say "skipping systemd units"; else
  on_host "$DEST/.venv/bin/sysbox" install systemd
  on_host systemctl daemon-reload
  on_host systemctl enable --now sysbox.service
fi

if [ -d "$HOST_ROOT/etc/crio" ] || [ -x "$HOST_ROOT/usr/bin/crio" ]; then
  cri=crio
  "$SYSBOX" install crio --dropin-dir "$HOST_ROOT/etc/crio/crio.conf.d" --binary "$HOST_BIN"
elif [ -f "$HOST_ROOT/etc/containerd/config.toml" ] || [ -x "$HOST_ROOT/usr/bin/containerd" ]; then
  cri=containerd
  "$SYSBOX" install containerd --config "$HOST_ROOT/etc/containerd/config.toml" --binary "$HOST_BIN"
else
  say "neither CRI-O nor containerd found under $HOST_ROOT"; exit 1
fi

if skip restart; then say "skipping the restart of $cri"; else
  on_host systemctl restart "$cri"
fi

mkdir -p "$HOST_ROOT/run/sysbox"
echo "$cri" > "$HOST_ROOT/run/sysbox/installed"

if skip label; then say "skipping the node label"; else
  token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token)
  curl -fsS --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \
    -H "Authorization: Bearer $token" -H "Content-Type: application/merge-patch+json" -X PATCH \
    --data '{"metadata":{"labels":{"sysbox-runtime":"running"}}}' \
    "https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}/api/v1/nodes/${NODE_NAME}" >/dev/null
fi
say "sysbox-runc is registered with $cri on this node"
if [ -n "${KUBERNETES_SERVICE_HOST:-}" ]; then exec sleep infinity; fi  # a DaemonSet pod stays up
