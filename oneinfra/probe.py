"""Is a cluster's API server ready? `/readyz` through its ingress, over TLS
verified against the cluster's CA, authenticated with oneinfra's admin
client certificate: what a user's kubectl would go through.

The client key lives in memory only: ssl loads a chain from files alone, so
it is handed over through an anonymous memory file (memfd), never the disk.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator

import httpx

PROBE_TIMEOUT = 3.0


@contextlib.contextmanager
def memory_file(content: bytes) -> Iterator[str]:
    """A path to a file that exists only in memory, while the block runs."""
    fd = os.memfd_create("oneinfra-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, content)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def client_tls(ca_pem: str, certificate_pem: str, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    with memory_file(certificate_pem.encode()) as cert, memory_file(key_pem) as key:
        context.load_cert_chain(cert, key)
    return context


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
