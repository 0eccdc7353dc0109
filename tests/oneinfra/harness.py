"""A fleet driven the way the daemon drives it, in memory, for tests."""

from __future__ import annotations

import datetime as dt
import os

from oneinfra.errors import DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import decider, projection
from oneinfra.model import events as ev
from oneinfra.model.certificates import pki_now, pki_positions
from oneinfra.model.state import FleetState
from oneinfra.pki.certlist import ClusterPKI

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


class MemoryKeys(dict[str, bytes]):
    def get(self, key_id: str) -> bytes:  # type: ignore[override]
        if key_id not in self:
            raise DomainError(f"data key {key_id} is destroyed or unknown")
        return self[key_id]


class Fleet:
    def __init__(self) -> None:
        self.state = FleetState()
        self.keys = MemoryKeys()
        self.log: list[ev.Event] = []
        self.clock = NOW  # what the decider is told the time is

    def at(self, position: int) -> ev.Event:
        """The event stored at a log position (positions start at 1)."""
        return self.log[position - 1]

    def run(self, command: cmd.Command) -> decider.Decision:
        needed = decider.pki_needed(self.state, command)
        context = decider.Context(
            now=self.clock,
            entropy=os.urandom,
            data_keys=self.keys,
            pki={name: self.pki(name) for name in needed},
        )
        decision = decider.decide(self.state, command, context)
        self.keys.update(decision.new_keys)
        for event in decision.events:
            self.log.append(event)
            self.state.position = len(self.log)
            projection.apply(self.state, event, self.state.position)
        for key_id in decision.destroyed_keys:
            self.keys.pop(key_id, None)
        return decision

    def pki(self, cluster: str) -> ClusterPKI:
        """The cluster's PKI as it is now (rotated, renewed or not), as the daemon reads it."""
        found = self.state.clusters[cluster]
        return pki_now(found, {p: self.at(p) for p in pki_positions(found)})

    def created(self, cluster: str) -> ev.ClusterCreated:
        event = self.at(self.state.clusters[cluster].created_at)
        assert isinstance(event, ev.ClusterCreated)
        return event

    def hypervisors(
        self, public: int = 1, private: int = 3, ports: tuple[int, int] = (30000, 32767)
    ) -> None:
        for i in range(public):
            self.run(cmd.RegisterHypervisor(
                name=f"public-{i}", endpoint=f"unix:///run/hv/public-{i}.sock", role="public",
                ip_address=f"192.0.2.{i + 1}", port_range=ports,
            ))  # fmt: skip
        for i in range(private):
            self.run(cmd.RegisterHypervisor(
                name=f"private-{i}", endpoint=f"unix:///run/hv/private-{i}.sock", role="private",
                ip_address=f"198.51.100.{i + 1}", port_range=ports,
            ))  # fmt: skip
