"""Proof that the real hypervisors work, before the reconciler depends on them."""

from __future__ import annotations

import io
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from oneinfra.local import config, images, sources, system
from oneinfra.local.progress import Reporter

from . import controlplane

pytestmark = pytest.mark.e2e


def spec(entry: dict[str, Any]) -> config.HypervisorSpec:
    return config.HypervisorSpec(entry["name"], entry["role"], entry["address"])


def test_status_lists_the_hypervisors(hypervisors: list[dict[str, Any]]) -> None:
    assert [h["role"] for h in hypervisors] == ["public", "private", "private", "private"]
    for entry in hypervisors:
        assert entry["endpoint"] == f"unix://{entry['socket']}"
        assert Path(entry["socket"]).is_socket()


def test_cri_version_answers_on_every_hypervisor(hypervisors: list[dict[str, Any]]) -> None:
    for entry in hypervisors:
        lines = system.crictl(spec(entry), "version").stdout.splitlines()
        version = dict(line.split(":", 1) for line in lines if ":" in line)
        assert version["RuntimeName"].strip() == "containerd"
        assert version["RuntimeApiVersion"].strip() == "v1"


def test_images_pull_through_cri_under_their_production_names(
    hypervisors: list[dict[str, Any]],
) -> None:
    """Control-plane images on the private hypervisors, the ingress and
    tooling images everywhere: each pulled through the CRI ImageService from
    the local mirror, by its production name."""
    catalogue = [image.name for image in images.catalogue(sources.current())]
    everywhere = [n for n in catalogue if "/pause:" in n or "haproxy" in n or "busybox" in n]
    jobs = [
        (entry, name)
        for entry in hypervisors
        for name in (catalogue if entry["role"] == "private" else everywhere)
    ]

    def pull(job: tuple[dict[str, Any], str]) -> str:
        entry, name = job
        system.crictl(spec(entry), "pull", name)
        listed = json.loads(system.crictl(spec(entry), "inspecti", "-o", "json", name).stdout)
        return str(listed["status"]["repoTags"][0])

    with ThreadPoolExecutor(max_workers=4) as pool:
        pulled = list(pool.map(pull, jobs))
    assert pulled == [name for _, name in jobs]


def test_etcd_and_apiserver_run_through_cri_until_readyz_ok(
    hypervisors: list[dict[str, Any]], tmp_path: Path
) -> None:
    """No oneinfra here: a host-network pod with etcd and kube-apiserver on a
    private hypervisor, throwaway certificates, /readyz reached from the host."""
    entry = next(h for h in hypervisors if h["role"] == "private")
    hv = spec(entry)
    ports = controlplane.Ports()
    workdir = hv.root / "smoke" / uuid.uuid4().hex[:8]
    controlplane.write_pki(workdir / "pki", hv.address)
    (workdir / "etcd").mkdir()
    pod = {
        "metadata": {"name": "smoke", "namespace": "e2e", "uid": uuid.uuid4().hex},
        "log_directory": str(workdir / "logs"),
        "linux": {"security_context": {"namespace_options": {"network": 2}}},  # host network
    }
    (workdir / "pod.json").write_text(json.dumps(pod))
    version = config.KUBERNETES_VERSIONS[0]
    etcd_tag = config.ETCD_VERSION.removeprefix("v") + "-0"
    containers = {
        "etcd": (f"registry.k8s.io/etcd:{etcd_tag}",
                 controlplane.etcd_command("/pki", "/var/lib/etcd", hv.address, ports)),
        "kube-apiserver": (f"registry.k8s.io/kube-apiserver:{version}",
                           controlplane.apiserver_command("/pki", hv.address, ports)),
    }  # fmt: skip
    pod_id = system.crictl(hv, "runp", str(workdir / "pod.json")).stdout.strip()
    try:
        for name, (image, command) in containers.items():
            container = {
                "metadata": {"name": name},
                "image": {"image": image},
                "command": command,
                "log_path": f"{name}.log",
                "mounts": [
                    {"container_path": "/pki", "host_path": str(workdir / "pki"), "readonly": True},
                    {"container_path": "/var/lib/etcd", "host_path": str(workdir / "etcd")},
                ],
            }
            (workdir / f"{name}.json").write_text(json.dumps(container))
            system.crictl(hv, "pull", image)
            created = system.crictl(hv, "create", pod_id, str(workdir / f"{name}.json"),
                                    str(workdir / "pod.json")).stdout.strip()  # fmt: skip
            system.crictl(hv, "start", created)
        deadline = time.monotonic() + 120
        while not controlplane.readyz(workdir / "pki", hv.address, ports.apiserver):
            if time.monotonic() > deadline:
                logs = "".join(p.read_text()[-2000:] for p in (workdir / "logs").glob("*.log"))
                pytest.fail(f"kube-apiserver never answered /readyz ok:\n{logs}")
            time.sleep(0.2)
    finally:
        system.crictl(hv, "stopp", pod_id, check=False)
        system.crictl(hv, "rmp", pod_id, check=False)
    pods = json.loads(system.crictl(hv, "pods", "-o", "json").stdout)["items"]
    assert pod_id not in [p["id"] for p in pods]


def test_binaries_already_on_the_machine_serve_instead_of_a_build(
    hypervisors: list[dict[str, Any]], tmp_path: Path
) -> None:
    """`oneinfra local up --binaries DIR`: the real binaries, found by their
    own --version, make the same images as a build does."""
    built = sources.current()
    version = config.KUBERNETES_VERSIONS[0]
    given = tmp_path / "bin"
    given.mkdir()
    for name, path in {**built.kubernetes[version], **built.etcd, "crictl": built.crictl}.items():
        (given / name).symlink_to(path)
    taken = sources.from_directory(given, Reporter(io.StringIO()))
    wanted = (*sources.CONTROL_PLANE, *sources.NODE)  # the node's too, when given
    assert taken.kubernetes == {version: {n: given / n for n in wanted}}
    assert taken.etcd_version == config.ETCD_VERSION and taken.crictl == given / "crictl"
    names = {image.name for image in images.catalogue(taken)}
    assert names <= {image.name for image in images.catalogue(built)}
    assert f"registry.k8s.io/kube-apiserver:{version}" in names
