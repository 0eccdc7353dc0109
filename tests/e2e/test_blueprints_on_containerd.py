"""Blueprints made real by the reconcile pass on the real hypervisors: a
1-replica control plane and its ingress, from oneinfra's desired state,
through CRI alone, until /readyz answers ok through the ingress to
oneinfra's admin certificate; then a no-op pass, and a repair."""

from __future__ import annotations

import shutil
import ssl
import stat
import time
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest

from oneinfra import render as bp
from oneinfra.api.runtime import v1 as cri_api
from oneinfra.local import config
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev
from oneinfra.pki.sealing import unseal
from oneinfra.reconcile import hypervisor_pass as reconciler
from oneinfra.render.labels import LABEL_ROLE, WRITER_ROLE
from oneinfra.runtime import cri, realize
from tests.oneinfra.harness import Fleet

pytestmark = pytest.mark.e2e


EVERY_ROLE = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "konnectivity-server", "haproxy"}  # fmt: skip


def readyz(url: str, ca: Path, cert: Path, key: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(cert, key)
    try:
        with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=2) as response:
            return bool(response.status == 200 and response.read() == b"ok")
    except OSError:
        return False


def test_a_control_plane_from_a_blueprint_becomes_ready(
    hypervisors: list[dict[str, Any]], tmp_path: Path
) -> None:
    fleet = Fleet()
    for entry in hypervisors:
        fleet.run(
            cmd.RegisterHypervisor(
                name=entry["name"],
                endpoint=entry["endpoint"],
                role=entry["role"],
                ip_address=entry["address"],
            )
        )
    fleet.run(cmd.CreateCluster(name="blueprint"))
    cluster = fleet.state.clusters["blueprint"]
    data_key = fleet.keys[cluster.key_id]
    (member,) = cluster.control_planes()
    ingress = cluster.ingress()
    assert ingress is not None
    placed, issued = fleet.at(member.placed_at), fleet.at(cluster.apiserver_at)
    assert isinstance(placed, ev.ComponentPlaced)
    assert isinstance(issued, ev.ApiServerCertificateIssued)
    private = fleet.state.hypervisors[member.hypervisor]
    data_dir = str(config.STATE / "hypervisors" / member.hypervisor / "data")
    membership = bp.EtcdMembership(
        {
            bp.member_name(cluster, member): bp.host_url(
                private.ip_address, member.ports["etcd-peer"]
            )
        },
        "new",
    )
    pods = [
        bp.control_plane(cluster, member, fleet.state.hypervisors, fleet.created("blueprint").pki,
                         placed, issued, membership, data_key, data_dir=data_dir),
        bp.ingress(cluster, ingress, fleet.state.hypervisors,
                   data_dir=str(config.STATE / "hypervisors" / ingress.hypervisor / "data")),
    ]  # fmt: skip
    endpoints = {h.name: h.endpoint for h in fleet.state.hypervisors.values()}

    async def reconcile_all() -> list[str]:
        """One pass on each hypervisor; the kinds of action taken."""
        done: list[str] = []
        for pod in pods:
            client = cri.HypervisorClient(endpoints[pod.hypervisor], timeout=60)
            try:
                for action in (await reconciler.reconcile(client, [pod])).actions:
                    target = getattr(action, "container", None)
                    done.append(type(action).__name__ + (f":{target}" if target else ""))
            finally:
                client.close()
        return done

    async def kill(role: str) -> None:
        client = cri.HypervisorClient(endpoints[pods[0].hypervisor], timeout=60)
        try:
            for container in await client.list_containers({bp.LABEL_ROLE: role}):
                if container.labels.get(bp.LABEL_CLUSTER_ID) == cluster.cluster_id:
                    await client.stop_container(container.id, grace_seconds=0)
        finally:
            client.close()

    async def tear_down() -> None:
        for pod in pods:
            client = cri.HypervisorClient(endpoints[pod.hypervisor], timeout=60)
            try:
                for sandbox in await client.list_sandboxes(
                    {bp.LABEL_CLUSTER_ID: cluster.cluster_id}
                ):
                    await client.stop_sandbox(sandbox.id)
                    await client.remove_sandbox(sandbox.id)
            finally:
                client.close()

    async def running_containers() -> set[str]:
        running: set[str] = set()
        for pod in pods:
            client = cri.HypervisorClient(endpoints[pod.hypervisor], timeout=60)
            try:
                for container in await client.list_containers(
                    {bp.LABEL_CLUSTER_ID: cluster.cluster_id}
                ):
                    if container.state == cri_api.ContainerState.CONTAINER_RUNNING:
                        running.add(container.labels[bp.LABEL_ROLE])
            finally:
                client.close()
        return running

    pki = fleet.created("blueprint").pki
    (tmp_path / "ca.crt").write_text(pki.ca.certificate)
    (tmp_path / "admin.crt").write_text(pki.admin.certificate)
    (tmp_path / "admin.key").write_bytes(unseal(pki.admin.key, data_key))
    public = fleet.state.hypervisors[ingress.hypervisor]
    url = f"https://{public.ip_address}:{ingress.ports['apiserver']}"
    try:

        def wait_ready() -> None:
            started = time.monotonic()
            while not readyz(
                url, tmp_path / "ca.crt", tmp_path / "admin.crt", tmp_path / "admin.key"
            ):
                if time.monotonic() - started > 180:
                    logs = Path(pods[0].directory) / "logs"
                    tails = {p.name: p.read_text()[-1500:] for p in logs.glob("*.log")}
                    pytest.fail(f"never ready through the ingress {url}: {tails}")
                time.sleep(0.2)

        assert sorted(anyio.run(reconcile_all)) == ["CreatePod", "CreatePod"]
        wait_ready()
        assert anyio.run(reconcile_all) == []  # converged: no action at all
        time.sleep(3)  # long enough for a crash-looping component to show
        assert anyio.run(running_containers) == EVERY_ROLE
        anyio.run(kill, "kube-apiserver")
        assert "RestartContainer:kube-apiserver" in anyio.run(reconcile_all)
        # Without their API server the controller manager and scheduler may
        # lose their leases and exit: passes repeat, as the loop's would,
        # until one takes no action and all five run.
        deadline = time.monotonic() + 120
        while anyio.run(reconcile_all) or anyio.run(running_containers) != EVERY_ROLE:
            assert time.monotonic() < deadline, "never settled after the repair"
            time.sleep(1)
        wait_ready()
        key_files = [f for f in pods[0].files if f.path.endswith(".key")]
        for file in key_files:
            mode = (Path(pods[0].directory) / file.path).stat().st_mode & 0o777
            assert mode == 0o600, file.path
    finally:
        anyio.run(tear_down)


def test_pods_created_in_one_pass_have_their_files_written_by_one_helper(
    hypervisors: list[dict[str, Any]],
) -> None:
    entry = hypervisors[0]
    data_dir = config.STATE / "hypervisors" / entry["name"] / "data"
    cluster_id = f"writer-{time.time_ns()}"
    pods = [
        bp.PodSpec(
            name=f"{cluster_id}-{component}",
            hypervisor=entry["name"],
            directory=f"{data_dir}/clusters/{cluster_id}/{component}",
            labels={**bp.MANAGED, bp.LABEL_CLUSTER_ID: cluster_id, bp.LABEL_COMPONENT: component},
            containers=[],
            files=[bp.File("pki/ca.crt", f"{component}\n".encode(), 0o640)],
        )
        for component in ("control-plane-0", "ingress")
    ]

    async def write() -> list[Any]:
        client = cri.HypervisorClient(entry["endpoint"], timeout=60)
        try:
            await realize.write_many(client, pods, dict(bp.MANAGED))
            return await client.list_sandboxes({LABEL_ROLE: WRITER_ROLE})
        finally:
            client.close()

    try:
        assert anyio.run(write) == []  # the helper's sandbox is gone
        for pod in pods:
            written = Path(pod.directory) / "pki/ca.crt"
            assert written.read_bytes() == pod.files[0].content
            assert stat.S_IMODE(written.stat().st_mode) == 0o640
    finally:
        shutil.rmtree(data_dir / "clusters" / cluster_id, ignore_errors=True)
