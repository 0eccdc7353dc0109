"""The projection: folds the fleet's events into its desired state."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from . import events as ev
from .state import Cluster, Component, FleetState, Hypervisor, placement_key


def apply(state: FleetState, event: ev.Event) -> None:
    """Fold one event into the state, in place."""
    match event:
        case ev.HypervisorRegistered():
            state.hypervisors[event.name] = Hypervisor(
                name=event.name,
                endpoint=event.endpoint,
                role=event.role,
                ip_address=event.ip_address,
                port_range=event.port_range,
                labels=dict(event.labels),
                tls=event.tls,
            )
        case ev.HypervisorLabelsChanged():
            state.hypervisors[event.name].labels = dict(event.labels)
        case ev.HypervisorRemoved():
            del state.hypervisors[event.name]
        case ev.ClusterCreated():
            fields = msgspec.structs.asdict(event)
            state.clusters[event.name] = Cluster(**fields)
        case ev.ComponentPlaced():
            state.clusters[event.cluster].components[event.component] = Component(
                name=event.component,
                role=event.role,
                hypervisor=event.hypervisor,
                ports=dict(event.ports),
                etcd_server=event.etcd_server,
                etcd_peer=event.etcd_peer,
            )
            state.hypervisors[event.hypervisor].placements[
                placement_key(event.cluster, event.component)
            ] = sorted(event.ports.values())
        case ev.ComponentRemoved():
            component = state.clusters[event.cluster].components.pop(event.component)
            del state.hypervisors[component.hypervisor].placements[
                placement_key(event.cluster, event.component)
            ]
        case ev.ApiServerCertificateIssued():
            cluster = state.clusters[event.cluster]
            cluster.apiserver_sans = list(event.sans)
            cluster.apiserver_serving = event.serving
        case ev.ClusterScaled():
            state.clusters[event.name].control_plane_replicas = event.control_plane_replicas
        case ev.ClusterDeleted():
            cluster = state.clusters.pop(event.name)
            for component in cluster.components.values():
                del state.hypervisors[component.hypervisor].placements[
                    placement_key(event.name, component.name)
                ]
        case ev.KubeconfigIssued():
            pass  # history only: no desired state changes
        case _:
            raise TypeError(f"the projection does not know {type(event).__name__}")


def fold(events: Iterable[ev.Event], state: FleetState | None = None) -> FleetState:
    """A fresh (or given) state with the events applied; versions are not tracked."""
    state = state if state is not None else FleetState()
    for event in events:
        apply(state, event)
    return state


_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(FleetState)


def encode_snapshot(state: FleetState) -> bytes:
    return _snapshot_encoder.encode(state)


def decode_snapshot(data: bytes) -> FleetState:
    return _snapshot_decoder.decode(data)
