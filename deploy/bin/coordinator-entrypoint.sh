#!/bin/sh
# fedsurv coordinator container entrypoint.
#   superlink (default)  start the TLS SuperLink with SuperNode authentication, then register
#                        every site of the allow-list (idempotent) and keep running
#   register             register the allow-list's sites with a running SuperLink
#   anything else        run it (e.g. `fedsurv --version`, `flwr supernode list fedsurv`)
set -eu

HOST=${FEDSURV_SUPERLINK_HOST:-127.0.0.1}
PORT=${FEDSURV_SUPERLINK_PORT:-9092}
TLS=${FEDSURV_TLS_DIR:-/config/tls}
ALLOW=${FEDSURV_ALLOW_LIST:-/config/allow-list.csv}
STATE=${FEDSURV_STATE_DIR:-/var/lib/fedsurv}
FLWR_HOME=${FLWR_HOME:-$STATE/flwr}
export FLWR_HOME

# The flwr CLI (register, run, ls) talks to the SuperLink through connection "fedsurv".
case "$HOST" in 0.0.0.0|::|"") LOCAL=127.0.0.1 ;; *) LOCAL=$HOST ;; esac
mkdir -p "$FLWR_HOME"
cat > "$FLWR_HOME/config.toml" <<TOML
[superlink]
default = "fedsurv"

[superlink.fedsurv]
address = "$LOCAL:$PORT"
root-certificates = "$TLS/ca.crt"
TOML

register() {
    if [ -f "$ALLOW" ]; then
        python /opt/fedsurv/deploy/register_sites.py --allow-list "$ALLOW" --wait 60
    else
        echo "fedsurv-coordinator: no allow-list at $ALLOW; no site is registered yet" >&2
    fi
}

case "${1:-superlink}" in
superlink)
    shift $(( $# > 0 ? 1 : 0 ))
    for f in ca.crt server.pem server.key; do
        [ -r "$TLS/$f" ] || { echo "fedsurv-coordinator: cannot read $TLS/$f" >&2; exit 2; }
    done
    flower-superlink \
        --ssl-ca-certfile "$TLS/ca.crt" \
        --ssl-certfile "$TLS/server.pem" \
        --ssl-keyfile "$TLS/server.key" \
        --enable-supernode-auth \
        --disable-runtime-dependency-installation \
        --database "$STATE/superlink.db" \
        --host "$HOST" --port "$PORT" "$@" &
    pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null' TERM INT
    register || echo "fedsurv-coordinator: registering the allow-list failed (see above)" >&2
    # the HEALTHCHECK reports healthy from now on (sites may start: their keys are registered)
    : > "${FEDSURV_READY_FILE:-/tmp/fedsurv-coordinator.ready}"
    status=0
    wait "$pid" || status=$?
    # a trapped signal interrupts the first wait; wait for the SuperLink to finish
    kill -0 "$pid" 2>/dev/null && { wait "$pid" || status=$?; }
    exit "$status"
    ;;
register)
    register
    ;;
*)
    exec "$@"
    ;;
esac
