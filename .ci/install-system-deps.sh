#!/usr/bin/env bash
# System packages the test suite needs (Debian). Idempotent and quiet: installs only what is
# missing. Called by .ci/run before `make test`.
#   postgresql  the SQL data-source tests start a throwaway cluster with initdb/pg_ctl
#               (tests/site_node_ops/conftest.py); no service is used.
#   nginx-light the coordinator's Fleet-only reverse proxy (coordinator/deployment/proxy.py),
#               started by fedsurv itself with its own config; Debian's nginx service (port 80
#               on all addresses) is kept from starting and stopped if it runs.
set -euo pipefail

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

need=()
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  need+=(postgresql)
fi
if ! command -v runuser >/dev/null 2>&1; then
  need+=(util-linux)
fi
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # tests/report/test_chromium.py
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  need+=(nginx-light)
fi

stop_debian_nginx() {
  # the packaged service, not fedsurv's own proxies (those keep their pid under a state dir)
  if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
    echo "install-system-deps: stopping Debian's nginx service (port 80); fedsurv runs its own"
    $sudo service nginx stop >/dev/null 2>&1 || $sudo /usr/sbin/nginx -s quit || true
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
  elif command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/nginx ]; then
    $sudo update-rc.d nginx disable >/dev/null 2>&1 || true
  fi
}

if [ "${#need[@]}" -eq 0 ]; then
  stop_debian_nginx
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: installing ${need[*]}"
# Debian starts a package's service at install (nginx: port 80 on 0.0.0.0): forbid that while
# we install, unless the machine already has a policy of its own.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# added by fedsurv .ci/install-system-deps.sh during apt-get install\nexit 101\n' \
    | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  added_policy=1
fi
cleanup() { if [ "$added_policy" -eq 1 ]; then $sudo rm -f "$policy"; fi; }
trap cleanup EXIT
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
stop_debian_nginx
