"""The local hypervisors' pure parts, anywhere (no root): where binaries
come from and how they are checked, and how long steps report progress."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from oneinfra.errors import LocalError
from oneinfra.local import builds, config, sources
from oneinfra.local.progress import Reporter


def fake_binary(directory: Path, name: str, says: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{says}'\n")
    path.chmod(0o755)


def given(directory: Path, kubernetes: str = "v1.37.2", etcd: str = "3.6.8") -> Path:
    directory.mkdir(exist_ok=True)
    for name in sources.CONTROL_PLANE:
        fake_binary(directory, name, f"Kubernetes {kubernetes}")
    fake_binary(directory, "etcd", f"etcd Version: {etcd}\nGit SHA: x")
    fake_binary(directory, "etcdctl", f"etcdctl version: {etcd}")
    fake_binary(directory, "crictl", "crictl version v1.37.0")
    return directory


@pytest.fixture
def no_pause_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(builds, "pause", lambda: tmp_path / "pause")


@pytest.mark.usefixtures("no_pause_build")
def test_given_binaries_are_used_as_they_are_with_their_versions(tmp_path: Path) -> None:
    directory = given(tmp_path / "bin")
    found = sources.from_directory(directory, Reporter(io.StringIO()))
    assert found.kubernetes == {"v1.37.2": {n: directory / n for n in sources.CONTROL_PLANE}}
    assert found.etcd_version == "v3.6.8" and found.crictl == directory / "crictl"
    assert sources.Sources.from_data(found.as_data()) == found


@pytest.mark.usefixtures("no_pause_build")
@pytest.mark.parametrize(
    ("kubernetes", "etcd", "refusal"),
    [
        ("v1.30.0", "3.6.8", "Kubernetes v1.30.0 is not one oneinfra runs"),
        ("v1.37.2", "3.5.9", "with etcd v3.6.8, and .* is v3.5.9"),
    ],
)
def test_given_binaries_of_other_versions_are_refused(
    tmp_path: Path, kubernetes: str, etcd: str, refusal: str
) -> None:
    with pytest.raises(LocalError, match=refusal):
        sources.from_directory(given(tmp_path / "bin", kubernetes, etcd), Reporter(io.StringIO()))


def test_missing_and_mismatched_binaries_are_named(tmp_path: Path) -> None:
    directory = given(tmp_path / "bin")
    (directory / "etcdctl").unlink()
    with pytest.raises(LocalError, match="lacks etcdctl"):
        sources.from_directory(directory, Reporter(io.StringIO()))
    given(directory)
    fake_binary(directory, "kube-scheduler", "Kubernetes v1.36.3")
    with pytest.raises(LocalError, match="differ in version"):
        sources.from_directory(directory, Reporter(io.StringIO()))


def test_go_build_lines_are_told_apart() -> None:
    mains, known = {"k8s.io/kubernetes/cmd/kubelet"}, {"k8s.io/api/core/v1", "fmt"}
    assert builds.build_line("k8s.io/kubernetes/cmd/kubelet", mains, known) == "main"
    assert builds.build_line("k8s.io/api/core/v1", mains, known) == "package"
    assert builds.build_line("go: downloading x v1", mains, known) == ""


def test_a_long_step_off_a_terminal_prints_each_phase_and_a_line_every_period() -> None:
    out = io.StringIO()
    reporter = Reporter(out, every=0.05)
    with reporter.step("building kubernetes-v1.37.2", estimate=600) as step:
        step.phase("compiling packages", total=10)
        step.advance(3)
        time.sleep(0.18)
        step.phase("linking")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("building kubernetes-v1.37.2: starting, 0s elapsed, ~10m00s left")
    assert any(
        line.startswith("building kubernetes-v1.37.2: compiling packages 3/10") for line in lines
    )
    assert sum("compiling packages 3/10" in line for line in lines) >= 3  # the ticks
    assert "linking" in lines[-1] and "(last time 10m00s)" in lines[-1]


def test_a_step_without_history_has_no_estimate() -> None:
    out = io.StringIO()
    with Reporter(out, every=60).step("images") as step:
        step.phase("pushing", total=2)
    assert out.getvalue().splitlines() == [
        "images: starting, 0s elapsed",
        "images: pushing 0/2, 0s elapsed",
    ]


def test_durations_are_remembered_for_the_next_estimate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config, "CACHE", tmp_path)
    (tmp_path / "bin").mkdir()
    build = builds.etcd()
    assert builds.last_duration(build) is None
    builds.remember_duration(build, 123.4)
    assert builds.last_duration(build) == 123.4


def test_the_images_built_are_the_ones_the_rendered_pods_and_addons_name() -> None:
    from oneinfra.render import addons, konnectivity, metrics_server, vpn

    assert config.KONNECTIVITY_VERSION == konnectivity.VERSION
    assert f"docker.io/oneinfra/wireguard:{config.WIREGUARD_GO_TAG}" == vpn.IMAGE
    assert config.FLANNEL_VERSION == addons.FLANNEL_VERSION
    assert config.COREDNS_VERSION == addons.COREDNS_VERSION
    assert config.METRICS_SERVER_VERSION == metrics_server.VERSION
