#!/usr/bin/env bash
# System packages the test suite needs (Debian). Idempotent and quiet: installs only what is
# missing. Called by .ci/run before `make test`.
#   postgresql  the SQL data-source tests start a throwaway cluster with initdb/pg_ctl
#               (tests/site_node_ops/conftest.py); no service is used.
set -euo pipefail

need=()
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  need+=(postgresql)
fi
if ! command -v runuser >/dev/null 2>&1; then
  need+=(util-linux)
fi
command -v chromium >/dev/null 2>&1 || need+=(chromium)  # tests/report/test_chromium.py
[ "${#need[@]}" -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-system-deps: installing ${need[*]}"
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
