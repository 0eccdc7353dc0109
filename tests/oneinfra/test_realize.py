"""Realizing blueprints: the file writer's script, and starting a pod over CRI."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


def test_one_helper_writes_each_pods_files_under_its_directory(tmp_path: Path) -> None:
    scripts = [
        realize.writer_script([bp.File("pki/ca.crt", b"first\n")], "c1/control-plane-0"),
        realize.writer_script([bp.File("haproxy.cfg", b"second\n", 0o644)], "c1/ingress"),
    ]
    run_each = ["/bin/sh", "-c", realize.RUN_EACH, "sh"]
    subprocess.run(run_each + [s.replace("/target", str(tmp_path)) for s in scripts], check=True)
    assert (tmp_path / "c1/control-plane-0/pki/ca.crt").read_bytes() == b"first\n"
    written = tmp_path / "c1/ingress/haproxy.cfg"
    assert written.read_bytes() == b"second\n" and stat.S_IMODE(written.stat().st_mode) == 0o644


def test_the_helper_stops_at_the_first_script_that_fails(tmp_path: Path) -> None:
    after = tmp_path / "after"
    done = subprocess.run(
        ["/bin/sh", "-c", realize.RUN_EACH, "sh", "exit 3", f"touch {after}"], check=False
    )
    assert done.returncode == 3 and not after.exists()


@given(st.lists(st.integers(min_value=0, max_value=realize.ARGUMENT_BYTES), max_size=40))
def test_scripts_are_batched_in_order_within_the_kernels_limits(sizes: list[int]) -> None:
    scripts = ["x" * size for size in sizes]
    batches = list(realize.argument_batches(scripts))
    assert [s for batch in batches for s in batch] == scripts
    assert all(batch for batch in batches)
    assert all(
        sum(map(len, batch)) <= realize.ARGUMENTS_BYTES or len(batch) == 1 for batch in batches
    )


def test_a_script_over_the_kernels_argument_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="too many"):
        list(realize.argument_batches(["x" * (realize.ARGUMENT_BYTES + 1)]))


@pytest.mark.parametrize("directories", [["/a", "/b"], ["/data/x", "/var/y"], ["/data"]])
def test_no_helper_mounts_a_directory_near_the_hosts_root(directories: list[str]) -> None:
    pods = [bp.PodSpec(name=d, hypervisor="hv", directory=d, labels={}, containers=[], files=[])
            for d in directories]  # fmt: skip
    assert realize.write_root(pods) is None


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
