#!/usr/bin/env python3
"""Container HEALTHCHECK of the coordinator: the SuperLink answers ``GET /health`` over TLS.

Reads FEDSURV_SUPERLINK_HOST / FEDSURV_SUPERLINK_PORT / FEDSURV_TLS_DIR as the entrypoint does,
and, when FEDSURV_READY_FILE is set (the image sets it), waits for the entrypoint to have
registered the allow-list's sites, so that sites started after a healthy coordinator
(compose ``depends_on: condition: service_healthy``) are known to it.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys


def main() -> int:
    ready = os.environ.get("FEDSURV_READY_FILE")
    if ready and not os.path.exists(ready):
        print("the coordinator is still starting (registering the allow-list's sites)")
        return 1
    host = os.environ.get("FEDSURV_SUPERLINK_HOST", "127.0.0.1")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    port = int(os.environ.get("FEDSURV_SUPERLINK_PORT", "9092"))
    tls = os.environ.get("FEDSURV_TLS_DIR", "/config/tls")
    context = ssl.create_default_context(cafile=f"{tls}/ca.crt")
    connection = http.client.HTTPSConnection(host, port, timeout=5, context=context)
    try:
        connection.request("GET", "/health")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        print(f"SuperLink {host}:{port} does not answer: {exc}")
        return 1
    finally:
        connection.close()
    print(f"SuperLink {host}:{port}: HTTP {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
