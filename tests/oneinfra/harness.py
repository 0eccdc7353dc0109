"""A fleet driven the way the daemon drives it, in memory, for tests."""

from __future__ import annotations

import datetime as dt
import os

from oneinfra import commands as cmd
from oneinfra import decider, projection
from oneinfra import events as ev
from oneinfra.errors import DomainError
from oneinfra.state import FleetState

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

    def run(self, command: cmd.Command) -> decider.Decision:
        context = decider.Context(now=NOW, entropy=os.urandom, data_keys=self.keys)
        decision = decider.decide(self.state, command, context)
        self.keys.update(decision.new_keys)
        for event in decision.events:
            projection.apply(self.state, event)
        self.log.extend(decision.events)
        for key_id in decision.destroyed_keys:
            self.keys.pop(key_id, None)
        return decision

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
