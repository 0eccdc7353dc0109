"""The CRI connection to each hypervisor, made once and remade when its
endpoint changes; over tcp://, with the hypervisor's client certificate,
whose key is unsealed only to build the TLS context."""

from __future__ import annotations

import functools

from ..model.state import Hypervisor
from ..pki.sealing import unseal
from ..runtime.cri import HypervisorClient, mutual_tls
from .fleet import CriObserver, DataKeys, no_cri_observer


class Connections:
    def __init__(
        self, keys: DataKeys, timeout: float, observe: CriObserver = no_cri_observer
    ) -> None:
        self.keys = keys
        self.timeout = timeout
        self.observe = observe  # every CRI call: its hypervisor, method, result, seconds
        self.clients: dict[str, HypervisorClient] = {}

    def client(self, hypervisor: Hypervisor) -> HypervisorClient:
        """The hypervisor's client, connected to its current endpoint."""
        client = self.clients.get(hypervisor.name)
        if client is not None and client.endpoint == hypervisor.endpoint:
            return client
        if client is not None:
            client.close()
        client = self.clients[hypervisor.name] = self.connect(hypervisor)
        return client

    def connect(self, hypervisor: Hypervisor) -> HypervisorClient:
        observe = functools.partial(self.observe, hypervisor.name)
        if hypervisor.tls is None:
            return HypervisorClient(hypervisor.endpoint, timeout=self.timeout, observe=observe)
        tls = hypervisor.tls
        key = unseal(tls.client_key, self.keys.get(tls.client_key.key_id))
        context = mutual_tls(tls.ca_certificate, tls.client_certificate, key)
        return HypervisorClient(hypervisor.endpoint, tls=context, timeout=self.timeout,
                                observe=observe)  # fmt: skip

    def close(self, name: str) -> None:
        client = self.clients.pop(name, None)
        if client is not None:
            client.close()
