"""The CRI client over a real Unix socket to the fake runtime: calls, label
filters, and every failure mapped to one of three kinds."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from grpclib.const import Status
from grpclib.server import Server

from oneinfra.api.pb.runtime.v1 import api_pb2 as pb
from oneinfra.api.runtime import v1 as api
from oneinfra.pki import x509 as pki
from oneinfra.runtime import cri
from tests.fakecri import FakeImageService, FakeRuntime, FakeRuntimeService, serve_fake

pytestmark = pytest.mark.anyio

OURS = {"managed-by": "oneinfra", "cluster": "prod"}


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[tuple[FakeRuntime, cri.HypervisorClient]]:
    socket = tmp_path / "cri.sock"
    async with serve_fake(socket) as runtime:
        client = cri.HypervisorClient(f"unix://{socket}", timeout=0.5)
        yield runtime, client
        client.close()


def sandbox_config(name: str, labels: dict[str, str]) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="oneinfra", uid=name),
        labels=labels,
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE)
            )
        ),
    )


async def test_version(fake: tuple[FakeRuntime, cri.HypervisorClient]) -> None:
    _, client = fake
    version = await client.version()
    assert (version.runtime_name, version.runtime_api_version) == ("fakecri", "v1")


async def test_a_pod_and_its_container_from_start_to_end(
    fake: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    runtime, client = fake
    assert await client.image_status("registry.k8s.io/pause:3.10") is None
    await client.pull_image("registry.k8s.io/pause:3.10")
    assert (await client.image_status("registry.k8s.io/pause:3.10")) is not None
    config = sandbox_config("prod-etcd", OURS)
    sandbox = await client.run_sandbox(config)
    container = await client.create_container(
        sandbox,
        pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="etcd"),
            image=pb.ImageSpec(image="registry.k8s.io/pause:3.10"),
            labels=OURS,
            envs=[pb.KeyValue(key="A", value=b"1")],
        ),
        config,
    )
    await client.start_container(container)
    status = await client.container_status(container)
    assert status.state == pb.CONTAINER_RUNNING and status.labels == OURS
    runtime.exec_result = api.ExecSyncResponse(stdout=b"ok", exit_code=0)
    assert (await client.exec_sync(container, ["true"])).stdout == b"ok"
    await client.stop_container(container, grace_seconds=1)
    await client.remove_container(container)
    await client.stop_sandbox(sandbox)
    await client.remove_sandbox(sandbox)
    await client.remove_sandbox(sandbox)  # already gone: still fine
    assert await client.list_sandboxes(OURS) == []


async def test_lists_filter_by_labels(fake: tuple[FakeRuntime, cri.HypervisorClient]) -> None:
    runtime, client = fake
    ours = await client.run_sandbox(sandbox_config("ours", OURS))
    await client.run_sandbox(sandbox_config("theirs", {"managed-by": "kubelet"}))
    listed = await client.list_sandboxes({"managed-by": "oneinfra"})
    assert [s.id for s in listed] == [ours]
    assert runtime.calls["list_pod_sandbox"] == 1


async def test_missing_things_are_not_found(fake: tuple[FakeRuntime, cri.HypervisorClient]) -> None:
    _, client = fake
    with pytest.raises(cri.NotFound):
        await client.container_status("nope")
    with pytest.raises(cri.NotFound):
        await client.sandbox_status("nope")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (Status.UNAVAILABLE, cri.Unreachable),
        (Status.DEADLINE_EXCEEDED, cri.Unreachable),
        (Status.NOT_FOUND, cri.NotFound),
        (Status.INTERNAL, cri.Failed),
        (Status.UNKNOWN, cri.Failed),
    ],
)
async def test_runtime_errors_map_to_three_kinds(
    fake: tuple[FakeRuntime, cri.HypervisorClient], status: Status, kind: type[cri.CRIError]
) -> None:
    runtime, client = fake
    runtime.failures["list_pod_sandbox"] = status
    with pytest.raises(kind, match="injected failure"):
        await client.list_sandboxes(OURS)


async def test_a_hypervisor_that_stops_answering_is_unreachable_in_time(
    fake: tuple[FakeRuntime, cri.HypervisorClient],
) -> None:
    runtime, client = fake
    runtime.hanging = True
    with anyio.fail_after(5):  # the client's own deadline is 0.5 s
        with pytest.raises(cri.Unreachable, match=r"no answer within 0\.5 s"):
            await client.version()


async def test_a_missing_socket_is_unreachable(tmp_path: Path) -> None:
    client = cri.HypervisorClient(f"unix://{tmp_path}/absent.sock", timeout=0.5)
    with pytest.raises(cri.Unreachable):
        await client.version()
    client.close()


def test_endpoints_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="needs mutual TLS"):
        cri.HypervisorClient("tcp://192.0.2.1:10010")
    with pytest.raises(ValueError, match="not unix"):
        cri.HypervisorClient("http://192.0.2.1")


async def test_tcp_with_mutual_tls(tmp_path: Path) -> None:
    """A tcp:// hypervisor over mutual TLS on loopback; a client whose
    certificate the server's CA did not sign is refused."""
    now = dt.datetime.now(dt.UTC)
    ca_key = pki.new_key(os.urandom)
    ca = pki.issue_ca("hypervisor-ca", ca_key, now, os.urandom)

    def leaf(name: str, usages: pki.Usages, issuer: Any, issuer_key: Any) -> tuple[Path, Path]:
        key = pki.new_key(os.urandom)
        cert = pki.issue_leaf(issuer, issuer_key, key, common_name=name, usages=usages,
                              sans=["127.0.0.1"], now=now, entropy=os.urandom)  # fmt: skip
        (tmp_path / f"{name}.crt").write_text(pki.cert_pem(cert))
        (tmp_path / f"{name}.key").write_bytes(pki.key_pem(key))
        return tmp_path / f"{name}.crt", tmp_path / f"{name}.key"

    server_cert, server_key = leaf("server", pki.SERVER, ca, ca_key)
    client_cert, client_key = leaf("client", pki.CLIENT, ca, ca_key)
    stranger_key = pki.new_key(os.urandom)
    stranger_ca = pki.issue_ca("stranger", stranger_key, now, os.urandom)
    bad_cert, bad_key = leaf("stranger", pki.CLIENT, stranger_ca, stranger_key)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cadata=pki.cert_pem(ca))
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    runtime = FakeRuntime()
    server = Server([FakeRuntimeService(runtime), FakeImageService(runtime)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await server.start("127.0.0.1", port, ssl=context)
    try:
        trusted = cri.mutual_tls(pki.cert_pem(ca), client_cert.read_text(), client_key.read_bytes())
        client = cri.HypervisorClient(f"tcp://127.0.0.1:{port}", tls=trusted, timeout=2)
        assert (await client.version()).runtime_name == "fakecri"
        client.close()
        untrusted = cri.mutual_tls(pki.cert_pem(ca), bad_cert.read_text(), bad_key.read_bytes())
        stranger = cri.HypervisorClient(f"tcp://127.0.0.1:{port}", tls=untrusted, timeout=2)
        with pytest.raises(cri.Unreachable):
            await stranger.version()
        stranger.close()
    finally:
        server.close()
        await server.wait_closed()
