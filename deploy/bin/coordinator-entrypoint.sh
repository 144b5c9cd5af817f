#!/bin/sh
# fedsurv coordinator container entrypoint: `fedsurv coordinator start` with a coordinator.toml
# written from the environment (or the one mounted at /config/coordinator.toml).
#   superlink (default)  start the perimeter: nginx on $FEDSURV_LISTEN (TLS, Fleet API only),
#                        the SuperLink on $FEDSURV_CONTROL (loopback: Control/Runtime APIs),
#                        its SuperExec (shared secret); register the allow-list, unregister
#                        every other node; stay in the foreground
#   register             reconcile the running SuperLink with the allow-list (both ways)
#   sites [--json]       list the enrolled sites: online/offline, last seen, node id
#   anything else        run it (e.g. `fedsurv --version`, `flwr supernode list`)
set -eu

LISTEN=${FEDSURV_LISTEN:-0.0.0.0:9092}
CONTROL=${FEDSURV_CONTROL:-127.0.0.1:9093}
TLS=${FEDSURV_TLS_DIR:-/config/tls}
ALLOW=${FEDSURV_ALLOW_LIST:-/config/allow-list.csv}
STATE=${FEDSURV_STATE_DIR:-/var/lib/fedsurv}
CONFIG=${FEDSURV_COORDINATOR_CONFIG:-/config/coordinator.toml}

if [ ! -f "$CONFIG" ]; then
    # no mounted config: one from the environment, in the tmpfs (the root is read-only)
    CONFIG=/tmp/fedsurv/coordinator.toml
    mkdir -p /tmp/fedsurv
    {
        echo "listen = \"$LISTEN\""
        echo "control = \"$CONTROL\""
        echo "state_dir = \"$STATE\""
        echo "allow_list = \"$ALLOW\""
        [ -n "${FEDSURV_POLL_INTERVAL:-}" ] && echo "poll_interval = $FEDSURV_POLL_INTERVAL"
        echo
        echo "[tls]"
        echo "ca_cert = \"$TLS/ca.crt\""
        echo "server_cert = \"$TLS/server.pem\""
        echo "server_key = \"$TLS/server.key\""
        if [ -n "${FEDSURV_AUDIT_KEY:-}" ]; then
            echo
            echo "[audit]"
            echo "signing_key = \"$FEDSURV_AUDIT_KEY\""
        fi
    } > "$CONFIG"
fi
export FEDSURV_COORDINATOR_CONFIG="$CONFIG"

case "${1:-superlink}" in
superlink)
    # the HEALTHCHECK waits for the registrations `start` writes after reconciling the roster
    rm -f "$STATE/registered-nodes.json"
    exec fedsurv coordinator start --config "$CONFIG"
    ;;
register)
    exec fedsurv coordinator register --config "$CONFIG"
    ;;
sites)
    shift
    exec fedsurv coordinator sites --config "$CONFIG" "$@"
    ;;
*)
    exec "$@"
    ;;
esac
