"""Realizing blueprints: the file writer's script, and starting a pod over CRI."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import anyio
import pytest

from oneinfra import render as bp
from oneinfra.api.runtime import v1 as api
from oneinfra.runtime import cri, realize
from tests.fakecri import serve_fake


def test_the_writer_script_writes_every_file_with_its_mode(tmp_path: Path) -> None:
    files = [
        bp.File("pki/ca.crt", b"certificate\n"),
        bp.File("pki/etcd/server.key", b"\x00secret\xff", 0o600),
        bp.File("haproxy.cfg", b"global\n"),
    ]
    script = realize.writer_script(files).replace("/target", str(tmp_path))
    subprocess.run(["/bin/sh", "-c", script], check=True)
    for file in files:
        written = tmp_path / file.path
        assert written.read_bytes() == file.content
        assert stat.S_IMODE(written.stat().st_mode) == file.mode
    assert not list(tmp_path.rglob("*.new"))


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "a b", "x;rm -rf /"])
def test_the_writer_refuses_paths_that_are_not_plain(path: str) -> None:
    with pytest.raises(ValueError, match="not a plain relative path"):
        realize.writer_script([bp.File(path, b"")])


def test_run_pod_starts_the_sandbox_and_every_container_with_labels(tmp_path: Path) -> None:
    pod = bp.PodSpec(
        name="c-1-ingress",
        hypervisor="pub",
        directory=str(tmp_path),
        labels={bp.LABEL_MANAGED_BY: "oneinfra", bp.LABEL_SPEC_HASH: "abc"},
        containers=[
            bp.ContainerSpec(
                "haproxy",
                "docker.io/library/haproxy:2.6",
                ["haproxy"],
                [bp.Mount("/etc/haproxy", str(tmp_path))],
            ),
        ],
        files=[],
    )

    async def scenario() -> None:
        async with serve_fake(tmp_path / "cri.sock") as fake:
            client = cri.HypervisorClient(f"unix://{tmp_path}/cri.sock")
            sandbox = await realize.run_pod(client, pod)
            (container,) = await client.list_containers({bp.LABEL_SPEC_HASH: "abc"})
            assert container.pod_sandbox_id == sandbox
            assert container.state == api.ContainerState.CONTAINER_RUNNING
            assert container.labels[bp.LABEL_ROLE] == "haproxy"
            status = await client.sandbox_status(sandbox)
            assert status.labels == pod.labels
            assert fake.images == {"docker.io/library/haproxy:2.6", realize.WRITER_IMAGE}
            # The file writer ran in the pod's own sandbox, and is gone.
            (writer,) = fake.removed_containers
            assert writer.sandbox_id == sandbox and writer.config.command[0] == "sh"
            client.close()

    anyio.run(scenario)
