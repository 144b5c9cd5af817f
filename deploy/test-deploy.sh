#!/usr/bin/env bash
# Container test (`make test-deploy`): build the wheelhouse and both images, then on 127.0.0.1
#   1. start the coordinator image (nginx on the site-facing port forwarding only the Fleet API,
#      TLS SuperLink with node auth on a loopback control port, site registered from the
#      allow-list)
#   2. run `fedsurv site check --config` in the site image: --read-only, non-root, data read-only
#   3. check refusals are explained: wrong CA (TLS), invalid data
#   4. start the site image as a node and wait until the coordinator lists it online;
#      run the image's HEALTHCHECK for both containers
#   5. from a container of the site image (the site's network), with only the CA certificate:
#      `flwr ls`, `flwr supernode list`, `flwr supernode register` and a raw Runtime API POST
#      against the coordinator's site-facing port each fail (404), and the node is still online
# Prints the time of every step. Needs podman (see ../shared/CONTAINERS.md or deploy/README.md).
#
# Environment: BASE (base image; default localhost/debian:bookworm if present, else
# debian:bookworm-slim), PYTHON (host python with pip; default .venv/bin/python),
# KEEP=1 keeps the containers and the work directory for inspection, SKIP_BUILD=1 reuses images,
# DEMO=1 also brings up compose.yaml (coordinator + 9 demo sites, via compose_to_podman.py) and
# runs the model-study analysis over the 9 site containers (about 2-3 more minutes).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")   # absolute, not resolved
FEDSURV=$(dirname "$PYTHON")/fedsurv
TAG=${TAG:-dev}
SITE_IMAGE=localhost/fedsurv-site:$TAG
COORD_IMAGE=localhost/fedsurv-coordinator:$TAG
RUN_ID=fedsurv-test-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fedsurv-test-deploy.XXXXXX")
export FLWR_TELEMETRY_ENABLED=0 FLWR_DISABLE_UPDATE_CHECK=1
# podman without systemd (CI, these machines) cannot run healthcheck timers; we run them by hand
podman_run() {
    podman run --network=host --read-only --tmpfs /tmp --health-interval=disable "$@" \
        2> >(grep -v "unable to get systemd connection" >&2)
}

if [[ -z "${BASE:-}" ]]; then
    if podman image exists localhost/debian:bookworm; then BASE=localhost/debian:bookworm
    else BASE=debian:bookworm-slim; fi
fi

T0=$(date +%s.%N)
LAST=$T0
TIMINGS=()
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
step() {  # step NAME: record the time since the previous step
    local now; now=$(date +%s.%N)
    TIMINGS+=("$(printf '%-58s %6s s' "$1" "$(seconds "$now" "$LAST")")")
    echo "== $1: $(seconds "$now" "$LAST") s"
    LAST=$now
}
fail() { echo "test-deploy: FAIL: $*" >&2; exit 1; }
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
owned_by_node() {  # give files to uid 10001 (the image's user), rootless or not
    if [[ $(id -u) -eq 0 ]]; then chown -R 10001:10001 "$@"; else podman unshare chown -R 10001:10001 "$@"; fi
}
cleanup() {
    local rc=$?
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "KEEP=1: containers ${RUN_ID}-* and $WORK are left for inspection"
    else
        [[ -f "$WORK/demo/down.sh" ]] && sh "$WORK/demo/down.sh" >/dev/null 2>&1
        podman rm -f -t 2 "${RUN_ID}-site" "${RUN_ID}-coordinator" >/dev/null 2>&1 || true
        podman volume rm -f "${RUN_ID}-site-state" "${RUN_ID}-coordinator-state" >/dev/null 2>&1 || true
        if [[ $(id -u) -eq 0 ]]; then rm -rf "$WORK"; else podman unshare rm -rf "$WORK"; fi
    fi
    exit $rc
}
trap cleanup EXIT

command -v podman >/dev/null || fail "podman is not installed (see deploy/README.md, Prerequisites)"

# -- build ---------------------------------------------------------------------------------
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    rm -f deploy/.wheelhouse/fedsurv-*.whl
    "$PYTHON" -m pip wheel --quiet --find-links deploy/.wheelhouse --wheel-dir deploy/.wheelhouse . \
        2> >(grep -v "^WARNING: Location" >&2) || fail "pip wheel failed"
    step "wheelhouse (pip wheel)"
    VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("fedsurv"))')
    WHEEL=deploy/.wheelhouse/fedsurv-$VERSION-py3-none-any.whl
    [[ -f $WHEEL ]] || fail "$WHEEL was not built"
    SHA=$(sha256sum "$WHEEL" | cut -d' ' -f1)
    for image in site coordinator; do
        podman build --quiet --format docker --network=host \
            --build-arg "BASE=$BASE" --build-arg "FEDSURV_VERSION=$VERSION" \
            --build-arg "FEDSURV_WHEEL_SHA256=$SHA" \
            -t "localhost/fedsurv-$image:$TAG" -f "deploy/$image.Containerfile" deploy >/dev/null \
            || fail "building the $image image failed"
        step "image fedsurv-$image (base $BASE)"
    done
fi
podman image exists "$SITE_IMAGE" || fail "no image $SITE_IMAGE (run without SKIP_BUILD)"

# -- key material, configs, data (as the runbook does it) ------------------------------------
PORT=$(free_port)           # the coordinator's site-facing (Fleet-only) proxy
CONTROL_PORT=$(free_port)   # its SuperLink, loopback only
NODE_PORT=$(free_port)
mkdir -p "$WORK/coordinator/tls" "$WORK/site/config/certs" "$WORK/site/config/keys" "$WORK/site/data"
(
    cd "$WORK"
    "$FEDSURV" keys ca --out ca >/dev/null
    "$FEDSURV" keys server --ca ca --san 127.0.0.1 --san localhost --out coordinator/tls >/dev/null
    cp ca/ca.crt coordinator/tls/ca.crt
    "$FEDSURV" keys site site-01 --out site-keys >/dev/null
    "$FEDSURV" keys enrol site-keys/site-01.enrol.json --allow-list coordinator/allow-list.csv >/dev/null
    cp ca/ca.crt site/config/certs/ca.pem
    cp site-keys/site-01.node site-keys/site-01.audit.key site/config/keys/
    cp "$ROOT/examples/demo_sites/site_01.csv" site/data/
    cp "$ROOT/examples/demo_sites/site_02.csv" site/data/
)
cat > "$WORK/site/config/site.toml" <<EOF
site_id = "site-01"

[coordinator]
address = "127.0.0.1:$PORT"
ca_cert = "certs/ca.pem"

[keys]
node_auth_private_key = "keys/site-01.node"
audit_signing_key = "keys/site-01.audit.key"

[data]
kind = "file"
path = "/data/site_01.csv"
EOF
printf 'patient_id,infusion_date\nP1,not-a-date\n' > "$WORK/site/data/broken.csv"
chmod 600 "$WORK"/site/config/keys/* "$WORK/coordinator/tls/server.key"
owned_by_node "$WORK/site/config" "$WORK/coordinator"
step "keys, configs (fedsurv keys ca|server|site|enrol)"

# -- coordinator ---------------------------------------------------------------------------
podman_run -d --name "${RUN_ID}-coordinator" \
    -e FEDSURV_LISTEN="127.0.0.1:$PORT" -e FEDSURV_CONTROL="127.0.0.1:$CONTROL_PORT" \
    -v "$WORK/coordinator/tls:/config/tls:ro" \
    -v "$WORK/coordinator/allow-list.csv:/config/allow-list.csv:ro" \
    -v "${RUN_ID}-coordinator-state:/var/lib/fedsurv" \
    "$COORD_IMAGE" >/dev/null
for _ in $(seq 1 120); do
    podman logs "${RUN_ID}-coordinator" 2>&1 | grep -q "site-01 (SHA256:.*registered" && break
    podman container exists "${RUN_ID}-coordinator" \
        && [[ $(podman inspect -f '{{.State.Running}}' "${RUN_ID}-coordinator") == true ]] \
        || { podman logs "${RUN_ID}-coordinator"; fail "the coordinator container exited"; }
    sleep 0.5
done
podman logs "${RUN_ID}-coordinator" 2>&1 | grep "site-01 (SHA256:" \
    || { podman logs "${RUN_ID}-coordinator"; fail "the coordinator did not register site-01"; }
podman healthcheck run "${RUN_ID}-coordinator" >/dev/null \
    || fail "coordinator HEALTHCHECK is not healthy"
step "coordinator container up, site-01 registered"

# -- site check in the site image ------------------------------------------------------------
SITE_MOUNTS=(-v "$WORK/site/config:/config:ro" -v "$WORK/site/data:/data:ro"
             -v "${RUN_ID}-site-state:/var/lib/fedsurv")
out=$(podman_run --rm "${SITE_MOUNTS[@]}" "$SITE_IMAGE" \
      site check --config /config/site.toml 2>&1) || { echo "$out"; fail "site check failed"; }
echo "$out" | grep -E '^\[(ok  |warn|FAIL)\]'
for expected in "coordinator TLS: 127.0.0.1:$PORT: TLS" "data: 11 patients, valid" \
                "state_dir: /var/lib/fedsurv"; do
    grep -qF "[ok  ] $expected" <<<"$out" || fail "site check output lacks '[ok  ] $expected'"
done
[[ $(podman_run --rm --entrypoint id "$SITE_IMAGE" -u) == 10001 ]] \
    || fail "the site image does not run as uid 10001"
step "fedsurv site check in the site image (--read-only)"

# refusals that site IT will meet: a wrong CA, invalid data (both must fail, with the reason)
cp "$WORK/ca/ca.crt" "$WORK/ca-right.pem"
(cd "$WORK" && "$FEDSURV" keys ca --out other-ca --name "another CA" >/dev/null)
out=$(podman_run --rm "${SITE_MOUNTS[@]}" -v "$WORK/other-ca/ca.crt:/other-ca.pem:ro" \
      -e FEDSURV_SITE__COORDINATOR__CA_CERT=/other-ca.pem "$SITE_IMAGE" \
      site check --config /config/site.toml 2>&1) && fail "site check passed with a wrong CA"
grep -F "[FAIL] coordinator TLS" <<<"$out" || fail "no TLS failure reported: $out"
out=$(podman_run --rm "${SITE_MOUNTS[@]}" -e FEDSURV_SITE__DATA__PATH=/data/broken.csv \
      "$SITE_IMAGE" site check --config /config/site.toml 2>&1) && fail "site check passed bad data"
grep -F "[FAIL] data" <<<"$out" | head -3 || fail "no data failure reported: $out"
step "site check refusals (wrong CA, invalid data)"

# -- the node connects ---------------------------------------------------------------------
podman_run -d --name "${RUN_ID}-site" "${SITE_MOUNTS[@]}" "$SITE_IMAGE" \
    site start --config /config/site.toml -- --port "$NODE_PORT" >/dev/null
for _ in $(seq 1 120); do
    podman logs "${RUN_ID}-site" 2>&1 | grep -q "SuperNode ID:" && break
    [[ $(podman inspect -f '{{.State.Running}}' "${RUN_ID}-site") == true ]] \
        || { podman logs "${RUN_ID}-site"; fail "the site container exited"; }
    sleep 0.5
done
podman logs "${RUN_ID}-site" 2>&1 | grep "SuperNode ID:" \
    || { podman logs "${RUN_ID}-site"; fail "the site node did not connect"; }
online=""
for _ in $(seq 1 40); do
    online=$(podman exec "${RUN_ID}-coordinator" flwr supernode list fedsurv-local --format json 2>/dev/null \
        | "$PYTHON" -c 'import json,sys; t=sys.stdin.read(); print(sum(n["status"]=="online" for n in json.loads(t[t.index("{"):])["nodes"]))' \
        2>/dev/null || true)
    [[ "$online" == 1 ]] && break
    sleep 0.5
done
[[ "$online" == 1 ]] || fail "the coordinator does not list the node as online"
podman healthcheck run "${RUN_ID}-site" >/dev/null || fail "site HEALTHCHECK is not healthy"
podman exec "${RUN_ID}-site" fedsurv site health
step "site container connected (online at the coordinator)"

# -- the perimeter, seen from the site's network ---------------------------------------------
outsider() {  # outsider PORT CA: Control/Runtime calls from a site-image container must all fail
    podman_run --rm --entrypoint sh -v "$2:/certs/ca.pem:ro" "$SITE_IMAGE" -c '
        set -u
        mkdir -p /tmp/home && cat > /tmp/home/config.toml <<TOML
[superlink]
default = "study"

[superlink.study]
address = "127.0.0.1:$0"
root-certificates = "/certs/ca.pem"
TOML
        export FLWR_HOME=/tmp/home
        fedsurv keys site outsider --out /tmp/keys >/dev/null
        fails=0
        for cmd in "ls study --format json" "supernode list study --format json"                    "supernode register /tmp/keys/outsider.node.pub study --format json"; do
            out=$(flwr $cmd 2>&1)
            if echo "$out" | grep -q "404 Not Found"; then echo "refused (404): flwr $cmd"
            else echo "NOT refused: flwr $cmd: $out"; fails=1; fi
        done
        code=$(python3 - "$0" <<PY
import http.client, ssl, sys
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[1]),
    context=ssl.create_default_context(cafile="/certs/ca.pem"), timeout=10)
c.request("POST", "/v1/runtime/acquire-task", body=b"")
print(c.getresponse().status)
PY
)
        echo "POST /v1/runtime/acquire-task -> HTTP $code"
        [ "$code" = 404 ] || fails=1
        exit $fails' "$1"
}
outsider "$PORT" "$WORK/ca/ca.crt" || fail "a Control/Runtime call from the site network was not refused"
online=$(podman exec "${RUN_ID}-coordinator" flwr supernode list fedsurv-local --format json 2>/dev/null \
    | "$PYTHON" -c 'import json,sys; t=sys.stdin.read(); print(sum(n["status"]=="online" for n in json.loads(t[t.index("{"):])["nodes"]))' \
    2>/dev/null || true)
[[ "$online" == 1 ]] || fail "the site node is no longer online after the outsider's attempts"
step "perimeter: Control/Runtime refused from the site network, node still online"

# -- optional: compose.yaml (coordinator + 9 demo sites) and one analysis over them ---------
if [[ "${DEMO:-0}" == 1 ]]; then
    for p in 9101 9102 9103 9104 9105 9106 9107 9108 9109; do
        ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || fail "port $p is busy (compose.yaml uses 9101-9109)"
    done
    DEMO_PORT=$(free_port)          # the demo coordinator's proxy (sites)
    DEMO_CONTROL_PORT=$(free_port)  # its SuperLink (flwr run from this host)
    mkdir -p "$WORK/demo"
    cp deploy/compose.yaml "$WORK/demo/compose.yaml"
    ln -s "$ROOT/examples" "$WORK/examples"             # compose.yaml mounts ../examples/...
    FEDSURV_FLEET_PORT=$DEMO_PORT FEDSURV=$FEDSURV bash deploy/compose-setup.sh \
        "$WORK/demo/compose-data" >/dev/null
    export FEDSURV_FLEET_PORT=$DEMO_PORT FEDSURV_CONTROL_PORT=$DEMO_CONTROL_PORT FEDSURV_TAG=$TAG
    "$PYTHON" deploy/bin/compose_to_podman.py "$WORK/demo/compose.yaml" --project "$RUN_ID-demo" \
        > "$WORK/demo/up.sh"
    "$PYTHON" deploy/bin/compose_to_podman.py "$WORK/demo/compose.yaml" --project "$RUN_ID-demo" \
        --down --volumes > "$WORK/demo/down.sh"
    sh "$WORK/demo/up.sh" > /dev/null 2> >(grep -v "unable to get systemd connection" >&2) \
        || fail "starting the compose services failed"
    connected=0
    for _ in $(seq 1 300); do   # every node logged its id once (under load, heartbeats flap)
        connected=0
        for n in 01 02 03 04 05 06 07 08 09; do
            podman logs "$RUN_ID-demo-site-$n" 2>&1 | grep -q "SuperNode ID:" && connected=$((connected + 1))
        done
        [[ $connected == 9 ]] && break
        sleep 1
    done
    [[ $connected == 9 ]] || fail "compose: $connected of 9 site nodes connected"
    podman exec "$RUN_ID-demo-coordinator" flwr supernode list fedsurv-local --format json 2>/dev/null \
        | "$PYTHON" -c 'import json,sys; t=sys.stdin.read(); print("online now:", sum(n["status"]=="online" for n in json.loads(t[t.index("{"):])["nodes"]), "of 9")' || true
    step "compose.yaml: coordinator + 9 site containers connected"
    outsider "$DEMO_PORT" "$WORK/demo/compose-data/ca/ca.crt" || fail "compose: a Control/Runtime call from the site network was not refused"
    step "compose.yaml: outsider refused at the site-facing port"

    # the model study (examples/model_study.yaml) through the coordinator container
    FLWR_HOME="$WORK/demo/flwr-home" "$PYTHON" - "$WORK/demo" "$DEMO_CONTROL_PORT" <<'PY'
import sys
from pathlib import Path

from fedsurv.coordinator.deployment.fab import RUN_CONFIG_DEFAULTS, write_bundle
from fedsurv.coordinator.deployment.runner import render_run_config, write_connection
from fedsurv.protocol.spec_file import load_spec

demo, port = Path(sys.argv[1]), sys.argv[2]
write_connection(demo / "flwr-home", f"127.0.0.1:{port}", demo / "compose-data/ca/ca.crt")
write_bundle(demo / "bundle", config=RUN_CONFIG_DEFAULTS)
spec = load_spec("examples/model_study.yaml")
(demo / "run.toml").write_text(render_run_config(
    {"spec": spec.model_dump_json(), "out-dir": "/var/lib/fedsurv/out/model-study"}))
PY
    FLWR_HOME="$WORK/demo/flwr-home" timeout 900 "$(dirname "$PYTHON")/flwr" run \
        "$WORK/demo/bundle" fedsurv-local --stream --run-config "$WORK/demo/run.toml" \
        > "$WORK/demo/run.log" 2>&1 || { tail -30 "$WORK/demo/run.log"; fail "flwr run failed"; }
    run_id=$(grep -o 'Successfully started run [0-9]*' "$WORK/demo/run.log" | grep -o '[0-9]*$' || true)
    [[ -n "$run_id" ]] || { tail -30 "$WORK/demo/run.log"; fail "flwr run did not start a run"; }
    status=""
    for _ in $(seq 1 450); do   # `flwr run --stream` can return before the run ends: poll
        status=$(FLWR_HOME="$WORK/demo/flwr-home" "$(dirname "$PYTHON")/flwr" ls fedsurv-local \
            --run-id "$run_id" --format json 2>/dev/null | "$PYTHON" -c 'import json,sys; t=sys.stdin.read(); d=json.loads(t[t.index("{"):]); r=(d.get("runs") or [d])[0]; print(r.get("status", "?"), r.get("status-details", r.get("error-message", "")))' 2>/dev/null || true)
        [[ "$status" == finished* ]] && break
        sleep 2
    done
    echo "run $run_id: $status"
    [[ "$status" == finished:completed* ]] || { tail -30 "$WORK/demo/run.log"; fail "run $run_id: $status"; }
    podman exec "$RUN_ID-demo-coordinator" test -f /var/lib/fedsurv/out/model-study/results.json \
        || { tail -40 "$WORK/demo/run.log"; fail "the analysis wrote no results.json"; }
    podman exec "$RUN_ID-demo-coordinator" cat /var/lib/fedsurv/out/model-study/results.json \
        | "$PYTHON" -c '
import json, sys
sites = json.load(sys.stdin)["sites"]
print("sites:", {k: sites[k] for k in ("requested", "contributed", "refused")})
sys.exit(0 if sites["contributed"] == 9 and not sites["refused"] else 1)' \
        || fail "the analysis did not pool all 9 sites"
    step "compose.yaml: model-study analysis over the 9 site containers"
fi

echo
echo "test-deploy: PASS"
printf '  %s\n' "${TIMINGS[@]}"
printf '  %-58s %6s s\n' "total" "$(seconds "$(date +%s.%N)" "$T0")"
