"""oneinfra's own CRI client (its proto subset, its field numbers) against the
real containerd: what works against the fake must work here."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest

from oneinfra.api.pb.runtime.v1 import api_pb2 as pb
from oneinfra.local import config
from oneinfra.runtime import cri, realize

pytestmark = pytest.mark.e2e


def test_oneinfras_client_drives_real_containerd(hypervisors: list[dict[str, Any]]) -> None:
    entry = next(h for h in hypervisors if h["role"] == "private")
    labels = {"managed-by": "oneinfra-e2e", "run": uuid.uuid4().hex[:8]}
    busybox = f"docker.io/library/busybox:{config.BUSYBOX_TAG}"

    async def scenario() -> None:
        client = cri.HypervisorClient(entry["endpoint"], timeout=30)
        try:
            version = await client.version()
            assert (version.runtime_name, version.runtime_api_version) == ("containerd", "v1")
            await client.pull_image(busybox)
            assert await client.image_status(busybox) is not None
            sandbox_config = realize.host_network_sandbox(
                "probe", labels["run"], labels, str(config.STATE / "probe-logs")
            )
            sandbox = await client.run_sandbox(sandbox_config)
            try:
                container = await client.create_container(
                    sandbox,
                    pb.ContainerConfig(
                        metadata=pb.ContainerMetadata(name="sleeper"),
                        image=pb.ImageSpec(image=busybox),
                        command=["sleep", "3600"],
                        envs=[pb.KeyValue(key="GREETING", value=b"hello")],
                        labels=labels,
                    ),
                    sandbox_config,
                )
                await client.start_container(container)
                listed = await client.list_containers(labels)
                assert [c.id for c in listed] == [container]
                assert [s.id for s in await client.list_sandboxes(labels)] == [sandbox]
                result = await client.exec_sync(container, ["sh", "-c", "echo $GREETING"])
                assert (result.exit_code, result.stdout) == (0, b"hello\n")
                status = await client.container_status(container)
                assert status.state == pb.CONTAINER_RUNNING
                await client.stop_container(container, grace_seconds=1)
                status = await client.container_status(container)
                assert status.state == pb.CONTAINER_EXITED
            finally:
                await client.stop_sandbox(sandbox)
                await client.remove_sandbox(sandbox)
            assert await client.list_sandboxes(labels) == []
            with pytest.raises(cri.NotFound):
                await client.sandbox_status(sandbox)
        finally:
            client.close()

    anyio.run(scenario)
