"""Write a short, plausible history into an event store, for scripts/run."""

from __future__ import annotations

import sys

import anyio
import msgspec

from eventstore import NO_STREAM, NewEvent, SQLiteEventStore


def event(type: str, **data: object) -> NewEvent:
    actor = msgspec.json.encode({"actor": {"uid": 1000, "user": "ops"}})
    return NewEvent(type=type, data=msgspec.json.encode(data), metadata=actor)


async def main(path: str) -> None:
    async with await SQLiteEventStore.open(path) as store:
        await store.append(
            "hypervisor-hv1",
            [event("HypervisorRegistered", name="hv1", role="private", ip="10.0.0.11")],
            NO_STREAM,
        )
        await store.append(
            "cluster-demo",
            [
                event("ClusterCreated", name="demo", kubernetesVersion="v1.37.2", replicas=1),
                event("ComponentPlaced", component="demo-cp-0", hypervisor="hv1"),
            ],
            NO_STREAM,
        )
        await store.append("cluster-demo", [event("ClusterScaled", replicas=3)], 1)
        print(f"wrote {await store.head_position()} events to {path}")


anyio.run(main, sys.argv[1])
