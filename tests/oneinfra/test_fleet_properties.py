"""Properties over random command sequences: placement never collides, state
is always consistent, replay gives exactly the live state, and a refused
command changes nothing."""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from oneinfra.errors import DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import projection
from oneinfra.model.kinds import CONTROL_PLANE, INGRESS
from oneinfra.model.state import FleetState, placement_key

from .harness import Fleet

names = st.sampled_from(["a", "b", "c"])
hypervisor_names = st.sampled_from(["h0", "h1", "h2", "h3", "h4", "h5"])

commands = st.one_of(
    st.builds(
        lambda name, public, low, width: cmd.RegisterHypervisor(
            name=name,
            endpoint=f"unix:///run/{name}.sock",
            role="public" if public else "private",
            ip_address=f"10.0.0.{int(name[1:]) + 1}",
            port_range=(low, low + width),
        ),
        hypervisor_names,
        st.booleans(),
        st.integers(30000, 30010),
        st.integers(0, 12),  # small ranges: exhaustion happens
    ),
    st.builds(
        lambda name, replicas: cmd.CreateCluster(name=name, control_plane_replicas=replicas),
        names,
        st.sampled_from([1, 3, 2, 5]),
    ),
    st.builds(
        lambda name, replicas: cmd.ScaleCluster(name=name, control_plane_replicas=replicas),
        names,
        st.sampled_from([1, 3, 5]),
    ),
    st.builds(lambda name: cmd.DeleteCluster(name=name), names),
    st.builds(lambda name: cmd.RemoveHypervisor(name=name), hypervisor_names),
    st.builds(
        lambda name, zone: cmd.LabelHypervisor(name=name, set={"zone": zone}),
        hypervisor_names,
        st.sampled_from(["a", "b"]),
    ),
)


def check_invariants(state: FleetState) -> None:
    used: dict[str, dict[int, str]] = {}
    expected_placements: dict[str, dict[str, list[int]]] = {h: {} for h in state.hypervisors}
    for cluster in state.clusters.values():
        control_planes = cluster.control_planes()
        assert len(control_planes) == cluster.control_plane_replicas
        assert len({c.hypervisor for c in control_planes}) == len(control_planes), "shared host"
        assert cluster.ingress() is not None
        for component in cluster.components.values():
            host = state.hypervisors.get(component.hypervisor)
            assert host is not None, f"{component.name} on an unregistered hypervisor"
            assert host.role == ("public" if component.role == INGRESS else "private")
            assert component.role in (CONTROL_PLANE, INGRESS)
            low, high = host.port_range
            for port in component.ports.values():
                assert low <= port <= high
                owner = used.setdefault(host.name, {}).get(port)
                assert owner is None, f"port {port} on {host.name} twice: {owner}, {component.name}"
                used[host.name][port] = f"{cluster.name}/{component.name}"
            expected_placements[host.name][placement_key(cluster.name, component.name)] = sorted(
                component.ports.values()
            )
        addresses = {state.hypervisors[c.hypervisor].ip_address for c in control_planes}
        assert addresses <= set(cluster.apiserver_sans)
    assert {h: hv.placements for h, hv in state.hypervisors.items()} == expected_placements


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    public=st.lists(st.integers(0, 8), min_size=1, max_size=2),
    private=st.lists(st.integers(2, 14), min_size=2, max_size=5),
    sequence=st.lists(commands, min_size=8, max_size=30),
)
def test_random_command_sequences_keep_the_fleet_consistent(
    public: list[int], private: list[int], sequence: list[cmd.Command]
) -> None:
    """Starts from a random fleet (port ranges small enough to run out), then
    runs random commands, some valid, some not."""
    fleet = Fleet()
    for index, width in enumerate(public + private):
        fleet.run(
            cmd.RegisterHypervisor(
                name=f"start-{index}",
                endpoint=f"unix:///run/start-{index}.sock",
                role="public" if index < len(public) else "private",
                ip_address=f"10.1.0.{index + 1}",
                port_range=(31000, 31000 + width),
            )
        )
    for command in sequence:
        before = projection.encode_snapshot(fleet.state)
        logged = len(fleet.log)
        try:
            fleet.run(command)
            event(f"accepted: {type(command).__name__}")
        except DomainError:
            event(f"refused: {type(command).__name__}")
            assert projection.encode_snapshot(fleet.state) == before, "a refusal changed state"
            assert len(fleet.log) == logged, "a refusal produced events"
        check_invariants(fleet.state)
    replayed = projection.fold(fleet.log)
    assert msgspec.to_builtins(replayed) == msgspec.to_builtins(fleet.state)
    snapshot = projection.decode_snapshot(projection.encode_snapshot(fleet.state))
    assert msgspec.to_builtins(snapshot) == msgspec.to_builtins(fleet.state)
    live_keys = {c.key_id for c in fleet.state.clusters.values()}
    assert set(fleet.keys) == live_keys, "a deleted cluster's data key survived"
