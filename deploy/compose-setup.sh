#!/usr/bin/env bash
# Key material and configs for deploy/compose.yaml (the local 9-site demo network):
# a study CA, the SuperLink's TLS certificate for 127.0.0.1, and for each of site-01..site-09 its
# keys (fedsurv keys site), its enrolment in the coordinator's allow-list (fedsurv keys enrol)
# and a site.toml. Everything goes to deploy/compose-data/ (or $1), owned by uid 10001 (the
# images' user). Needs `fedsurv` on PATH (pip install fedsurv, or the repo's .venv).
#
#   bash deploy/compose-setup.sh && podman compose -f deploy/compose.yaml up -d
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/compose-data}
PORT=${FEDSURV_FLEET_PORT:-9092}   # the coordinator proxy the sites dial
FEDSURV=${FEDSURV:-fedsurv}
SITES=${SITES:-"01 02 03 04 05 06 07 08 09"}

command -v "$FEDSURV" >/dev/null || { echo "fedsurv is not on PATH" >&2; exit 2; }
if [[ -e "$OUT" ]]; then
    echo "$OUT exists; remove it first (it holds the demo's keys)" >&2
    exit 2
fi
mkdir -p "$OUT/coordinator/tls"
cd "$OUT"
"$FEDSURV" keys ca --out ca --name "fedsurv demo CA"
"$FEDSURV" keys server --ca ca --san 127.0.0.1 --san localhost --out coordinator/tls
cp ca/ca.crt coordinator/tls/ca.crt
for n in $SITES; do
    site=site-$n
    "$FEDSURV" keys site "$site" --out "keys/$site" >/dev/null
    enrolled=$("$FEDSURV" keys enrol "keys/$site/$site.enrol.json" \
        --allow-list coordinator/allow-list.csv)
    echo "${enrolled%%$'\n'*}"
    mkdir -p "$site/certs" "$site/keys"
    cp ca/ca.crt "$site/certs/ca.pem"
    cp "keys/$site/$site.node" "keys/$site/$site.audit.key" "$site/keys/"
    chmod 600 "$site"/keys/*
    cat > "$site/site.toml" <<TOML
# $site of the local demo network (deploy/compose.yaml). Inside the container:
# /config = this directory, /data = the site's table, /var/lib/fedsurv = state and audit log.
site_id = "$site"

[coordinator]
address = "127.0.0.1:$PORT"
ca_cert = "certs/ca.pem"

[keys]
node_auth_private_key = "keys/$site.node"
audit_signing_key = "keys/$site.audit.key"

[data]
kind = "file"
path = "/data/site_$n.csv"

[policy]
# demo only (as \`fedsurv demo\`): the demo sites hold 1-11 patients and the default (5)
# would refuse 5 of the 9; a real site keeps min_cohort_size >= 5
min_cohort_size = 1
TOML
done
chmod 600 coordinator/tls/server.key
if [[ $(id -u) -eq 0 ]]; then
    chown -R 10001:10001 coordinator site-*
elif command -v podman >/dev/null; then
    podman unshare chown -R 10001:10001 coordinator site-*
else
    echo "note: give $OUT/coordinator and $OUT/site-* to the containers' uid 10001" >&2
fi
echo "wrote $OUT: CA (ca/ca.key: keep private), coordinator/, site-01..site-09/"
