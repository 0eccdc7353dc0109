"""A cluster's VPN server on real containerd: WireGuard in a pod with a
network namespace of its own (the hypervisor's CNI), its UDP port mapped
from the ingress's hypervisor, serving the key its events hold."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from oneinfra.runtime.cri import HypervisorClient
from oneinfra.runtime.wgctl import ServedPeer, WireGuard, parse_dump
from tests.oneinfra.daemon import Daemon

from .fleet import WAIT, create, eventually, fleet, kubeconfig, kubectl
from .test_clusters import containers_of, endpoint_of, running, stop_container

__all__ = ["fleet"]  # the module's fixture

pytestmark = pytest.mark.e2e


def served(hypervisors: list[dict[str, Any]], cluster_id: str) -> tuple[str, str, str] | None:
    """(hypervisor, container id, `wg show wg0 dump`'s first line) of the
    cluster's running VPN server, or None: also while its key is not set
    (start.sh makes wg0, then sets its key and port)."""
    found = dumped(hypervisors, cluster_id)
    if found is None or found[2].split("\t")[1] == "(none)":
        return None
    return found[0], found[1], found[2].splitlines()[0]


def served_peers(hypervisors: list[dict[str, Any]], cluster_id: str) -> list[ServedPeer]:
    """The peers the cluster's running VPN server has; none while it is not up."""
    found = dumped(hypervisors, cluster_id)
    return [] if found is None else parse_dump(found[2])[1]


def dumped(hypervisors: list[dict[str, Any]], cluster_id: str) -> tuple[str, str, str] | None:
    found = running(containers_of(hypervisors, cluster_id, "wireguard"))
    if not found:
        return None
    ((hv, container),) = found

    async def dump() -> str:
        client = HypervisorClient(endpoint_of(hypervisors, hv), timeout=30)
        try:
            return await WireGuard(client, container.id).run("show", "wg0", "dump")
        finally:
            client.close()

    try:
        return hv, container.id, anyio.run(dump)
    except Exception:
        return None  # started, its interface not up yet


def test_a_vpn_cluster_runs_its_wireguard_server_in_its_own_network_namespace(
    fleet: tuple[Daemon, list[dict[str, Any]]], tmp_path: Path
) -> None:
    daemon, hypervisors = fleet
    created = daemon.json(
        "cluster", "create", "edge", "--vpn", "--wait", "--timeout", WAIT, timeout=240
    )  # fmt: skip
    assert created["status"]["ready"] is True
    (server,) = [c for c in created["components"] if c["role"] == "vpn"]
    (ingress,) = [c for c in created["components"] if c["role"] == "ingress"]
    assert server["hypervisor"] == ingress["hypervisor"]  # where workers reach already
    port = server["ports"]["vpn"]
    assert port not in ingress["ports"].values()

    history = daemon.cli("history", "--cluster", "edge").stdout
    (public_key,) = re.findall(r'VpnEnabled .*server_public_key="([^"]+)"', history)
    found = eventually(lambda: served(hypervisors, created["clusterId"]), "the VPN server")
    hv, container_id, interface = found
    assert hv == server["hypervisor"]
    _, served_key, listen_port, *_ = interface.split("\t")
    assert (served_key, listen_port) == (public_key, "51820")

    # Its own network namespace: wg0 is not on the hypervisor's host network,
    # and the hypervisor leads its UDP port into the pod (CNI's portmap).
    netns = f"/run/netns/oilocal-{hv}"
    links = subprocess.run(["nsenter", f"--net={netns}", "ip", "-o", "link"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert "eth0" in links.stdout and "wg0" not in links.stdout, links.stdout
    rules = subprocess.run(["nsenter", f"--net={netns}", "iptables-save", "-t", "nat"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert re.search(rf"-p udp .*--dport {port}\b.*DNAT", rules.stdout), rules.stdout

    # Killed, it comes back with the same key.
    stop_container(hypervisors, hv, container_id)
    again = eventually(
        lambda: (s := served(hypervisors, created["clusterId"])) and s[1] != container_id and s,
        "the VPN server back",
    )
    assert again[2].split("\t")[1] == public_key

    # Joining workers find the server in the cluster (kube-public/oneinfra-vpn).
    config_file = kubeconfig(daemon, "edge", tmp_path)
    info = eventually(
        lambda: (got := kubectl(config_file, "-n", "kube-public", "get", "configmap",
                                "oneinfra-vpn", "-o", "json", check=False)).returncode == 0
        and json.loads(got.stdout)["data"],
        "the VPN's ConfigMap",
    )  # fmt: skip
    shown = daemon.json("cluster", "show", "edge")
    assert info["endpoint"] == shown["vpnEndpoint"] == f"{ingress_address(shown)}:{port}"
    assert info["serverPublicKey"] == shown["vpnServerPublicKey"] == public_key


def ingress_address(cluster: dict[str, Any]) -> str:
    return str(cluster["apiServerEndpoint"]).removeprefix("https://").rsplit(":", 1)[0]


def test_the_vpn_enabled_on_a_running_cluster_starts_its_server(
    fleet: tuple[Daemon, list[dict[str, Any]]],
) -> None:
    daemon, hypervisors = fleet
    created = create(daemon, "later")
    assert not [c for c in created["components"] if c["role"] == "vpn"]
    enabled = daemon.json("cluster", "enable-vpn", "later", "--wait", "--timeout", WAIT,
                          timeout=240)  # fmt: skip
    assert enabled["status"]["ready"] is True
    found = eventually(lambda: served(hypervisors, created["clusterId"]), "the VPN server")
    assert found[2].split("\t")[1] == enabled["vpnServerPublicKey"]
