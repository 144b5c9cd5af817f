#!/usr/bin/env python3
"""Container HEALTHCHECK of the coordinator: the SuperLink answers ``GET /health`` over TLS.

Reads FEDSURV_SUPERLINK_HOST / FEDSURV_SUPERLINK_PORT / FEDSURV_TLS_DIR as the entrypoint does.
"""

from __future__ import annotations

import http.client
import os
import ssl
import sys


def main() -> int:
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
