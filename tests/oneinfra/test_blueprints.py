"""Blueprints: the pods a component should run, from the desired state."""

from __future__ import annotations

import base64

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from oneinfra import render as bp
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.model.state import Cluster
from oneinfra.render import konnectivity

from .harness import Fleet


@pytest.fixture
def fleet() -> Fleet:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    return fleet


def membership(fleet: Fleet, cluster: Cluster) -> bp.EtcdMembership:
    return bp.EtcdMembership(
        members={
            bp.member_name(cluster, c): bp.host_url(
                fleet.state.hypervisors[c.hypervisor].ip_address, c.ports["etcd-peer"]
            )
            for c in cluster.control_planes()
        },
        state="new",
    )


def control_plane_pod(fleet: Fleet, name: str = "prod", index: int = 0) -> bp.PodSpec:
    cluster = fleet.state.clusters[name]
    component = cluster.control_planes()[index]
    placed = fleet.at(component.placed_at)
    issued = fleet.at(cluster.apiserver_at)
    assert isinstance(placed, ev.ComponentPlaced)
    assert isinstance(issued, ev.ApiServerCertificateIssued)
    return bp.control_plane(
        cluster, component, fleet.state.hypervisors, fleet.created(name).pki, placed, issued,
        membership(fleet, cluster), fleet.keys[cluster.key_id],
    )  # fmt: skip


def in_container_paths(pod: bp.PodSpec) -> dict[str, bp.File]:
    """Each file as the containers see it, through their mounts."""
    seen: dict[str, bp.File] = {}
    for container in pod.containers:
        for mount in container.mounts:
            for file in pod.files:
                host_path = f"{pod.directory}/{file.path}"
                if host_path.startswith(mount.host_path + "/"):
                    seen[mount.container_path + host_path[len(mount.host_path) :]] = file
    return seen


def test_every_path_a_flag_names_is_a_mounted_file(fleet: Fleet) -> None:
    pod = control_plane_pod(fleet)
    visible = in_container_paths(pod)
    referenced = [
        arg.split("=", 1)[1]
        for container in pod.containers
        for arg in container.command
        if "=" in arg and arg.split("=", 1)[1].startswith("/etc/kubernetes/")
    ]
    assert len(referenced) > 25
    for path in referenced:
        if path == konnectivity.SOCKET:  # made by the proxy server when it starts
            continue
        assert path in visible, f"{path} is named by a flag but not written and mounted"


def test_api_server_and_proxy_server_share_the_tunnels_socket_directory(fleet: Fleet) -> None:
    pod = control_plane_pod(fleet)
    containers = {c.name: c for c in pod.containers}
    apiserver, server = containers["kube-apiserver"], containers["konnectivity-server"]
    socket_directory = konnectivity.SOCKET.rsplit("/", 1)[0]
    shared = [
        (m.host_path, m.readonly)
        for c in (apiserver, server)
        for m in c.mounts
        if m.container_path == socket_directory
    ]
    assert len(shared) == 2 and shared[0] == shared[1] and not shared[0][1]
    assert f"--egress-selector-config-file={konnectivity.EGRESS_CONFIG}" in apiserver.command
    assert f"--uds-name={konnectivity.SOCKET}" in server.command
    egress = yaml.safe_load(in_container_paths(pod)[konnectivity.EGRESS_CONFIG].content)
    (selection,) = egress["egressSelections"]
    assert selection["name"] == "cluster"
    assert selection["connection"]["transport"]["uds"]["udsName"] == konnectivity.SOCKET
    # Every replica's server knows how many there are; each listens on its own ports.
    assert "--server-count=3" in server.startup_args
    component = fleet.state.clusters["prod"].control_planes()[0]
    assert f"--agent-port={component.ports['konnectivity']}" in server.command


def test_private_keys_are_0600_and_match_their_certificates(fleet: Fleet) -> None:
    pod = control_plane_pod(fleet)
    files = {f.path: f for f in pod.files}
    keys = [f for f in pod.files if f.path.endswith(".key")]
    assert len(keys) >= 8
    for key_file in keys:
        assert key_file.mode == 0o600
        certificate = files.get(key_file.path.removesuffix(".key") + ".crt")
        if certificate is not None:
            key = load_pem_private_key(key_file.content, None)
            cert = x509.load_pem_x509_certificate(certificate.content)
            assert key.public_key() == cert.public_key(), key_file.path
    assert all(f.mode == 0o644 for f in pod.files if f.path.endswith(".crt"))


def test_labels_name_the_pod_and_its_spec(fleet: Fleet) -> None:
    pod = control_plane_pod(fleet)
    cluster = fleet.state.clusters["prod"]
    assert pod.labels == {
        bp.LABEL_MANAGED_BY: "oneinfra",
        bp.LABEL_CLUSTER: "prod",
        bp.LABEL_CLUSTER_ID: cluster.cluster_id,
        bp.LABEL_COMPONENT: "control-plane-0",
        bp.LABEL_SPEC_HASH: bp.spec_hash(pod.containers),
        bp.LABEL_DIRECTORY: pod.directory,
    }
    assert pod.name == f"{cluster.cluster_id}-control-plane-0"
    assert [c.name for c in pod.containers] == [
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
        "konnectivity-server",
    ]  # fmt: skip


def files_hashes(pod: bp.PodSpec) -> dict[str, str]:
    return {c.name: pod.files_hash(c) for c in pod.containers}


def test_a_new_certificate_restarts_only_the_containers_that_read_it(fleet: Fleet) -> None:
    """A scale reissues the serving certificate: the API server, which
    watches it, is not restarted for it (its live hash changes instead)."""
    first, again = control_plane_pod(fleet), control_plane_pod(fleet)
    assert first == again  # pure: the same state gives the same pod, byte for byte
    fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=1))  # new apiserver cert
    after = control_plane_pod(fleet)
    # What runs is unchanged: the pod stays; etcd (it reads only etcd/) keeps running.
    assert after.labels[bp.LABEL_SPEC_HASH] == first.labels[bp.LABEL_SPEC_HASH]
    before, now = files_hashes(first), files_hashes(after)
    changed = {name for name in now if now[name] != before[name]}
    assert "kube-apiserver" not in changed and "etcd" not in changed
    assert "kube-controller-manager" in changed  # it mounts all of pki/
    apiserver = next(c for c in after.containers if c.name == "kube-apiserver")
    assert after.live_hash(apiserver) != first.live_hash(apiserver) != ""


def test_etcd_membership_is_not_part_of_the_spec_hash(fleet: Fleet) -> None:
    cluster = fleet.state.clusters["prod"]
    component = cluster.control_planes()[0]
    placed, issued = fleet.at(component.placed_at), fleet.at(cluster.apiserver_at)
    assert isinstance(placed, ev.ComponentPlaced)
    assert isinstance(issued, ev.ApiServerCertificateIssued)

    def pod(membership: bp.EtcdMembership | None) -> bp.PodSpec:
        return bp.control_plane(
            cluster, component, fleet.state.hypervisors, fleet.created("prod").pki, placed,
            issued, membership, fleet.keys[cluster.key_id],
        )  # fmt: skip

    founding = pod(membership(fleet, cluster))
    joining = pod(bp.EtcdMembership(members={"a": "https://192.0.2.9:2380"}, state="existing"))
    blocked = pod(None)
    assert founding.labels == joining.labels == blocked.labels
    assert blocked.blocked and not founding.blocked
    etcd = next(c for c in joining.containers if c.name == "etcd")
    assert "--initial-cluster-state=existing" in etcd.startup_args


def test_etcd_knows_every_member_at_its_peer_url(fleet: Fleet) -> None:
    pod = control_plane_pod(fleet)
    etcd = next(c for c in pod.containers if c.name == "etcd")
    flags = dict(arg.split("=", 1) for arg in [*etcd.command[1:], *etcd.startup_args])
    members = dict(m.split("=", 1) for m in flags["--initial-cluster"].split(","))
    cluster = fleet.state.clusters["prod"]
    assert len(members) == 3
    for component in cluster.control_planes():
        address = fleet.state.hypervisors[component.hypervisor].ip_address
        assert (
            members[f"prod-{component.name}"] == f"https://{address}:{component.ports['etcd-peer']}"
        )
    assert flags["--initial-cluster-state"] == "new"
    assert flags["--initial-cluster-token"] == cluster.cluster_id


def test_kubeconfigs_reach_the_local_api_server_as_their_component(fleet: Fleet) -> None:
    pod = control_plane_pod(fleet)
    files = {f.path: f for f in pod.files}
    port = fleet.state.clusters["prod"].control_planes()[0].ports["apiserver"]
    for path, user in (("conf/controller-manager.conf", "system:kube-controller-manager"),
                       ("conf/scheduler.conf", "system:kube-scheduler")):  # fmt: skip
        config = yaml.safe_load(files[path].content)
        assert config["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{port}"
        cert = x509.load_pem_x509_certificate(
            base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
        )
        assert cert.subject.rfc4514_string() == f"CN={user}"
        assert files[path].mode == 0o600


def test_the_ingress_balances_over_every_api_server_with_health_checks(fleet: Fleet) -> None:
    cluster = fleet.state.clusters["prod"]
    ingress = cluster.ingress()
    assert ingress is not None
    pod = bp.ingress(cluster, ingress, fleet.state.hypervisors)
    config = pod.files[0].content.decode()
    assert f"bind :{ingress.ports['apiserver']}" in config and "mode tcp" in config
    for component in cluster.control_planes():
        address = fleet.state.hypervisors[component.hypervisor].ip_address
        assert f"{address}:{component.ports['apiserver']} check" in config
    assert "option httpchk GET /readyz" in config
    # None passing its check, each is tried anyway, unchecked.
    for component in cluster.control_planes():
        address = fleet.state.hypervisors[component.hypervisor].ip_address
        assert f"{component.name}-anyway {address}:{component.ports['apiserver']} backup" in config
    assert pod.hypervisor == ingress.hypervisor


def test_a_stopping_api_server_serves_until_the_ingress_has_dropped_it(fleet: Fleet) -> None:
    cluster = fleet.state.clusters["prod"]
    ingress = cluster.ingress()
    assert ingress is not None
    config = bp.ingress(cluster, ingress, fleet.state.hypervisors).files[0].content.decode()
    (defaults,) = [line.split() for line in config.splitlines() if "default-server" in line]
    every, fall = (
        int(defaults[defaults.index("inter") + 1].removesuffix("s")),
        int(defaults[defaults.index("fall") + 1]),
    )
    apiserver = next(c for c in control_plane_pod(fleet).containers if c.name == "kube-apiserver")
    (delay,) = [a for a in apiserver.command if a.startswith("--shutdown-delay-duration=")]
    seconds = int(delay.split("=")[1].removesuffix("s"))
    assert seconds > every * fall + 1  # a check may itself take a second
    assert apiserver.stop_grace > seconds + 5  # then it drains what it serves


def test_clusters_and_components_never_share_a_directory_or_name(fleet: Fleet) -> None:
    fleet.run(cmd.CreateCluster(name="other", control_plane_replicas=3))
    pods = [control_plane_pod(fleet, name, i) for name in ("prod", "other") for i in range(3)]
    assert len({p.directory for p in pods}) == len({p.name for p in pods}) == 6


def test_a_component_on_an_ipv6_hypervisor_gets_bracketed_urls() -> None:
    assert bp.host_url("2001:db8::1", 2380) == "https://[2001:db8::1]:2380"
    assert bp.host("2001:db8::1") == "[2001:db8::1]"


def test_the_api_server_reaches_its_own_etcd_first_then_the_founding_members(
    fleet: Fleet,
) -> None:
    pod = control_plane_pod(fleet)
    apiserver = next(c for c in pod.containers if c.name == "kube-apiserver")
    (flag,) = [a for a in apiserver.startup_args if a.startswith("--etcd-servers=")]
    servers = flag.split("=", 1)[1].split(",")
    cluster = fleet.state.clusters["prod"]
    own, *others = cluster.control_planes()
    assert servers[0] == f"https://127.0.0.1:{own.ports['etcd-client']}"
    assert servers[1:] == [
        f"https://{fleet.state.hypervisors[c.hypervisor].ip_address}:{c.ports['etcd-client']}"
        for c in others
    ]
