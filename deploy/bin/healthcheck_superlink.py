#!/usr/bin/env python3
"""Container HEALTHCHECK of the coordinator: the perimeter is up and the roster reconciled.

Healthy when (1) ``fedsurv coordinator start`` has registered the allow-list's sites (it writes
``<state>/registered-nodes.json`` after reconciling; the entrypoint removes it at start, so
sites started after a healthy coordinator, compose ``depends_on: condition: service_healthy``,
are known to it), (2) the SuperLink answers ``GET /health`` over TLS on the loopback control
address and (3) the proxy on the site-facing address answers, and refuses that same path
(404): only the Fleet API goes through. Reads FEDSURV_LISTEN / FEDSURV_CONTROL /
FEDSURV_TLS_DIR / FEDSURV_STATE_DIR as the entrypoint does.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys


def _get(address: str, cafile: str) -> int:
    host, port = address.rsplit(":", 1)
    host = "127.0.0.1" if host in ("", "0.0.0.0", "[::]", "::") else host.strip("[]")
    context = ssl.create_default_context(cafile=cafile)
    connection = http.client.HTTPSConnection(host, int(port), timeout=5, context=context)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    finally:
        connection.close()


def main() -> int:
    state = os.environ.get("FEDSURV_STATE_DIR", "/var/lib/fedsurv")
    if not os.path.exists(os.path.join(state, "registered-nodes.json")):
        print("the coordinator is still starting (registering the allow-list's sites)")
        return 1
    cafile = os.path.join(os.environ.get("FEDSURV_TLS_DIR", "/config/tls"), "ca.crt")
    checks = (("SuperLink", os.environ.get("FEDSURV_CONTROL", "127.0.0.1:9093"), 200),
              ("Fleet proxy", os.environ.get("FEDSURV_LISTEN", "0.0.0.0:9092"), 404))
    for name, address, expected in checks:
        try:
            status = _get(address, cafile)
        except (OSError, http.client.HTTPException) as exc:
            print(f"{name} {address} does not answer: {exc}")
            return 1
        print(f"{name} {address}: GET /health -> HTTP {status}")
        if status != expected:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
