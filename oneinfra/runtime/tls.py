"""Client TLS, built one way for every peer oneinfra dials: hypervisors'
CRI endpoints over tcp:// and clusters' API servers (the readiness probe).

Verified against the given CA, authenticated by a client certificate whose
key lives in memory only: ssl loads a chain from files alone, so it is
handed over through anonymous memory files (memfd), never the disk.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def memory_file(content: bytes) -> Iterator[str]:
    """A path to a file that exists only in memory, while the block runs."""
    fd = os.memfd_create("oneinfra-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, content)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def client_context(
    ca_pem: str, certificate_pem: str, key_pem: bytes, *, alpn: Sequence[str] = ()
) -> ssl.SSLContext:
    """Mutual TLS: the server verified against `ca_pem`, we by our certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    with memory_file(certificate_pem.encode()) as cert, memory_file(key_pem) as key:
        context.load_cert_chain(cert, key)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
