"""Is a cluster's API server ready? `/readyz` through its ingress, over TLS
verified against the cluster's CA, authenticated with oneinfra's admin
client certificate (tls.client_context): what a user's kubectl would go
through.
"""

from __future__ import annotations

import ssl

import httpx

PROBE_TIMEOUT = 3.0


async def readyz(endpoint: str, tls: ssl.SSLContext) -> str | None:
    """None when the API server is ready; otherwise why not, in a few words."""
    try:
        async with httpx.AsyncClient(verify=tls, timeout=PROBE_TIMEOUT) as client:
            reply = await client.get(f"{endpoint}/readyz")
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    if reply.status_code == 200:
        return None
    return f"/readyz answered {reply.status_code}: {reply.text.strip()[:200]}"
