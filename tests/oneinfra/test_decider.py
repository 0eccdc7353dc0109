"""The decider: what each command decides, and every refusal a person can meet."""

from __future__ import annotations

import pytest

from oneinfra.errors import DomainError
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.model import projection
from oneinfra.model.state import KONNECTIVITY_PORTS, component_index

from .harness import Fleet


@pytest.fixture
def fleet() -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    return fleet


def refused(fleet: Fleet, command: cmd.Command, message: str) -> None:
    """The command is refused with a message matching `message`, changing nothing."""
    before = projection.encode_snapshot(fleet.state)
    log_length = len(fleet.log)
    with pytest.raises(DomainError, match=message):
        fleet.run(command)
    assert projection.encode_snapshot(fleet.state) == before
    assert len(fleet.log) == log_length


def test_create_places_ingress_and_replicas_on_distinct_hypervisors(fleet: Fleet) -> None:
    decision = fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    assert [type(e).__name__ for e in decision.events] == [
        "ClusterCreated",
        "ComponentPlaced",
        "ComponentPlaced",
        "ComponentPlaced",
        "ComponentPlaced",
        "ApiServerCertificateIssued",
    ]
    cluster = fleet.state.clusters["prod"]
    ingress = cluster.ingress()
    assert ingress is not None and fleet.state.hypervisors[ingress.hypervisor].role == "public"
    assert ingress.ports == {"apiserver": 30000, "konnectivity": 30001}
    hosts = [c.hypervisor for c in cluster.control_planes()]
    assert sorted(hosts) == ["private-0", "private-1", "private-2"]
    assert all(
        set(c.ports) == {"apiserver", "etcd-client", "etcd-peer", *KONNECTIVITY_PORTS}
        for c in cluster.control_planes()
    )
    assert list(decision.new_keys) == [cluster.key_id]
    assert cluster.kubernetes_version == "v1.37.2"


def test_placement_spreads_load_and_never_reuses_a_port(fleet: Fleet) -> None:
    for name in ("a", "b", "c"):
        fleet.run(cmd.CreateCluster(name=name))
    hosts = [fleet.state.clusters[n].control_planes()[0].hypervisor for n in "abc"]
    assert sorted(hosts) == ["private-0", "private-1", "private-2"]
    ingress_ports = [fleet.state.clusters[n].ingress().ports["apiserver"] for n in "abc"]  # type: ignore[union-attr]
    assert ingress_ports == [30000, 30002, 30004]  # each ingress also has konnectivity's port


def test_scale_up_and_down_keeps_the_oldest_members(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod"))
    first = fleet.state.clusters["prod"].control_planes()[0]
    fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=3))
    members = fleet.state.clusters["prod"].control_planes()
    assert [component_index(c.name) for c in members] == [0, 1, 2]
    assert len({c.hypervisor for c in members}) == 3
    sans = fleet.state.clusters["prod"].apiserver_sans
    assert all(fleet.state.hypervisors[c.hypervisor].ip_address in sans for c in members)
    decision = fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=1))
    removed = [e.component for e in decision.events if isinstance(e, ev.ComponentRemoved)]
    assert removed == ["control-plane-1", "control-plane-2"]
    (remaining,) = fleet.state.clusters["prod"].control_planes()
    assert remaining == first
    assert fleet.state.clusters["prod"].control_plane_replicas == 1


def test_scaling_to_the_current_size_decides_nothing(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod"))
    assert fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=1)).events == []


def test_delete_frees_ports_and_destroys_the_data_key(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    key_id = fleet.state.clusters["prod"].key_id
    decision = fleet.run(cmd.DeleteCluster(name="prod"))
    assert decision.destroyed_keys == [key_id]
    assert all(not h.placements for h in fleet.state.hypervisors.values())
    fleet.run(cmd.CreateCluster(name="prod"))  # the name is free again
    assert fleet.state.clusters["prod"].key_id != key_id


def test_kubeconfig_is_returned_and_only_its_facts_recorded(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod"))
    decision = fleet.run(cmd.IssueKubeconfig(cluster="prod", user="alice", groups=["devs"]))
    (issued,) = decision.events
    assert isinstance(issued, ev.KubeconfigIssued)
    assert (issued.cluster, issued.user, issued.groups) == ("prod", "alice", ["devs"])
    assert decision.reply is not None and "client-key-data" in decision.reply
    assert "server: https://192.0.2.1:30000" in decision.reply
    key_text = decision.reply.split("client-key-data: ")[1].split()[0]
    assert key_text not in repr(issued)


def test_hypervisor_labels_set_and_remove(fleet: Fleet) -> None:
    fleet.run(cmd.LabelHypervisor(name="private-0", set={"zone": "a", "disk": "ssd"}))
    fleet.run(cmd.LabelHypervisor(name="private-0", set={"zone": "b"}, remove=["disk"]))
    assert fleet.state.hypervisors["private-0"].labels == {"zone": "b"}
    assert fleet.run(cmd.LabelHypervisor(name="private-0", set={"zone": "b"})).events == []


def test_removing_an_idle_hypervisor(fleet: Fleet) -> None:
    fleet.run(cmd.RemoveHypervisor(name="private-2"))
    assert "private-2" not in fleet.state.hypervisors


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (cmd.CreateCluster(name="Prod"), "not a DNS-1123 label"),
        (cmd.CreateCluster(name="prod_1"), "not a DNS-1123 label"),
        (cmd.CreateCluster(name=""), "must not be empty"),
        (cmd.CreateCluster(name="x" * 41), "the limit is 40"),
        (
            cmd.CreateCluster(name="p", kubernetes_version="v1.20.0"),
            "v1.20.0' is not supported; use one of: v1.37.2",
        ),
        (cmd.CreateCluster(name="p", control_plane_replicas=2), "must be odd"),
        (cmd.CreateCluster(name="p", control_plane_replicas=9), "from 1 to 7"),
        (cmd.CreateCluster(name="p", control_plane_replicas=0), "must be odd"),
        (
            cmd.CreateCluster(name="p", control_plane_replicas=5),
            "needs 5 private hypervisor.*3 private",
        ),
        (
            cmd.CreateCluster(name="p", service_cidr="10.96.0.1/12"),
            "service CIDR '10.96.0.1/12' is not a valid CIDR",
        ),
        (cmd.CreateCluster(name="p", pod_cidr="banana"), "pod CIDR 'banana' is not a valid CIDR"),
        (
            cmd.CreateCluster(name="p", service_cidr="10.0.0.0/8", pod_cidr="10.1.0.0/16"),
            "overlaps",
        ),
        (
            cmd.CreateCluster(name="p", vpn_enabled=True, vpn_cidr="10.244.1.0/24"),
            "VPN CIDR .* overlaps|overlaps .*VPN",
        ),
        (cmd.CreateCluster(name="p", dns_domain="Bad_Domain"), "not a DNS name"),
        (
            cmd.CreateCluster(name="p", apiserver_extra_sans=["not a name"]),
            "neither an IP address nor a DNS name",
        ),
        (cmd.ScaleCluster(name="ghost", control_plane_replicas=3), "unknown cluster 'ghost'"),
        (cmd.DeleteCluster(name="ghost"), "unknown cluster 'ghost'"),
        (cmd.IssueKubeconfig(cluster="ghost"), "unknown cluster 'ghost'"),
        (cmd.RemoveHypervisor(name="ghost"), "unknown hypervisor 'ghost'"),
        (cmd.LabelHypervisor(name="private-0", set={"bad key!": "v"}), "label 'bad key!'"),
        (
            cmd.RegisterHypervisor(
                name="private-0", endpoint="unix:///x", role="private", ip_address="1.2.3.4"
            ),
            "already registered",
        ),
        (
            cmd.RegisterHypervisor(
                name="h",
                endpoint="unix:///run/hv/private-0.sock",
                role="private",
                ip_address="1.2.3.4",
            ),
            "already registered by 'private-0'",
        ),
        (
            cmd.RegisterHypervisor(
                name="h", endpoint="unix:///x", role="edge", ip_address="1.2.3.4"
            ),
            "role must be",
        ),
        (
            cmd.RegisterHypervisor(
                name="h", endpoint="unix:///x", role="private", ip_address="1.2.3"
            ),
            "not an IPv4 or IPv6",
        ),
        (
            cmd.RegisterHypervisor(
                name="h", endpoint="tcp://h:1", role="private", ip_address="1.2.3.4"
            ),
            "needs mutual TLS",
        ),
        (
            cmd.RegisterHypervisor(
                name="h", endpoint="http://h", role="private", ip_address="1.2.3.4"
            ),
            "use unix:///path or tcp://host:port",
        ),
        (
            cmd.RegisterHypervisor(
                name="h", endpoint="unix://relative", role="private", ip_address="1.2.3.4"
            ),
            "absolute",
        ),
        (
            cmd.RegisterHypervisor(
                name="h",
                endpoint="unix:///x",
                role="private",
                ip_address="1.2.3.4",
                port_range=(10, 5),
            ),
            "port range 10-5 is invalid",
        ),
        (
            cmd.RegisterHypervisor(
                name="h",
                endpoint="tcp://h:1",
                role="private",
                ip_address="1.2.3.4",
                tls=cmd.HypervisorCredentials("x", "y", "z"),
            ),
            "not a PEM certificate",
        ),
    ],
)
def test_refusals_name_the_problem_and_change_nothing(
    fleet: Fleet, command: cmd.Command, message: str
) -> None:
    refused(fleet, command, message)


def test_a_duplicate_cluster_name_is_refused(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod"))
    refused(fleet, cmd.CreateCluster(name="prod"), "cluster 'prod' already exists")


def test_no_public_hypervisor_is_refused() -> None:
    fleet = Fleet()
    fleet.hypervisors(public=0, private=3)
    refused(fleet, cmd.CreateCluster(name="p"), "ingress needs 1 public hypervisor")


def test_an_exhausted_port_range_is_refused() -> None:
    fleet = Fleet()
    fleet.hypervisors(public=1, private=1, ports=(40000, 40008))
    fleet.run(cmd.CreateCluster(name="first"))  # takes 6 of 9 private ports
    refused(
        fleet,
        cmd.CreateCluster(name="second"),
        r"port range is exhausted on: private-0 \(40000-40008\)",
    )


def test_a_hypervisor_with_components_cannot_be_removed(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    refused(
        fleet, cmd.RemoveHypervisor(name="private-1"), "still holds components: prod/control-plane-"
    )


def test_scaling_beyond_the_private_hypervisors_is_refused(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    refused(
        fleet,
        cmd.ScaleCluster(name="prod", control_plane_replicas=5),
        "besides the 3 this cluster uses",
    )
    refused(fleet, cmd.ScaleCluster(name="prod", control_plane_replicas=4), "must be odd")


def test_a_kubeconfig_with_a_silly_ttl_is_refused(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="prod"))
    refused(fleet, cmd.IssueKubeconfig(cluster="prod", ttl_seconds=5), "TTL must be between")
    refused(fleet, cmd.IssueKubeconfig(cluster="prod", user=""), "user must be")


def test_a_lost_etcd_member_replaced_joins_again_on_a_data_directory_of_its_own(
    fleet: Fleet,
) -> None:
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    replace = cmd.ReplaceEtcdMember(cluster="prod", component="control-plane-1",
                                    member_id=0xBEEF, reason="  it crash-loops  ")  # fmt: skip
    decision = fleet.run(replace)
    assert decision.events == [ev.EtcdMemberReplaced(
        cluster="prod", component="control-plane-1", member_id=0xBEEF, reason="it crash-loops"
    )]  # fmt: skip
    component = fleet.state.clusters["prod"].components["control-plane-1"]
    assert (component.founding, component.etcd_generation, component.replaced_member) == (
        False, 1, 0xBEEF,
    )  # fmt: skip
    assert fleet.run(replace).events == []  # asked twice: replaced once
    others = [c for c in fleet.state.clusters["prod"].control_planes() if c is not component]
    assert all(c.founding and c.etcd_generation == 0 for c in others)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (cmd.ReplaceEtcdMember(cluster="ghost", component="control-plane-0", member_id=1,
                               reason="x"), "unknown cluster 'ghost'"),
        (cmd.ReplaceEtcdMember(cluster="trio", component="ingress", member_id=1, reason="x"),
         "has no control plane 'ingress'"),
        (cmd.ReplaceEtcdMember(cluster="trio", component="x" * 10_000, member_id=1, reason="x"),
         "has no control plane"),
        (cmd.ReplaceEtcdMember(cluster="solo", component="control-plane-0", member_id=1,
                               reason="x"), "cannot be rebuilt from the others"),
        (cmd.ReplaceEtcdMember(cluster="trio", component="control-plane-0", member_id=0,
                               reason="x"), "is not an etcd member id"),
        (cmd.ReplaceEtcdMember(cluster="trio", component="control-plane-0", member_id=2**64,
                               reason="x"), "is not an etcd member id"),
        (cmd.ReplaceEtcdMember(cluster="trio", component="control-plane-0", member_id=1,
                               reason=" "), "says why"),
    ],
)  # fmt: skip
def test_a_replacement_that_cannot_be_is_refused(
    fleet: Fleet, command: cmd.Command, message: str
) -> None:
    fleet.run(cmd.CreateCluster(name="trio", control_plane_replicas=3))
    fleet.run(cmd.CreateCluster(name="solo", control_plane_replicas=1))
    refused(fleet, command, message)
