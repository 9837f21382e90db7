#!/usr/bin/env bash
# The whole suite: parallel-safe tests under xdist, then the few that must run alone.
# pytest's exit 5 ("no tests ran") fails the run: an empty suite is not a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-$PWD/.venv}
IMAGE_CACHE=${IMAGE_CACHE:-/var/cache/sysbox-images}
export SYSBOX_IMAGE_CACHE=$IMAGE_CACHE
# The system-container tests need the debian-systemd image too (about a minute, cached after).
"$VENV/bin/sysbox" image build --cache "$IMAGE_CACHE" busybox debian-systemd
start=$(date +%s)
# Lint and types first (configured in pyproject.toml): seconds, and any finding fails the run.
"$VENV/bin/ruff" check sysbox
"$VENV/bin/mypy"
"$VENV/bin/pytest" -n auto -m "not serial" "$@"
serial=$("$VENV/bin/pytest" -q --collect-only -m serial "$@" 2>/dev/null | grep -c '::' || true)
if [ "$serial" -gt 0 ]; then
  "$VENV/bin/pytest" -p no:xdist -m serial "$@"
fi
echo "suite finished in $(( $(date +%s) - start )) s"
