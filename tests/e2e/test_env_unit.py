"""The local hypervisors' own rules, testable anywhere (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oneinfra.errors import LocalError
from oneinfra.local import builds, config, system


def test_refuses_clearly_when_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(LocalError, match="needs root"):
        system.require_root_linux()


def test_go_binary_names_follow_go_build() -> None:
    assert builds.go_binary_name("k8s.io/kubernetes/cmd/kube-apiserver") == "kube-apiserver"
    assert builds.go_binary_name("go.etcd.io/etcd/server/v3") == "server"
    assert builds.go_binary_name("go.etcd.io/etcd/etcdctl/v3") == "etcdctl"


def test_a_missing_go_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)
    monkeypatch.setattr(builds, "GO_LOCATIONS", ())
    with pytest.raises(LocalError, match="Go is needed"):
        builds.go_binary()


def test_staging_modules_take_the_matching_v0_version() -> None:
    build = builds.kubernetes("v1.37.2")
    assert build.submodule_version("k8s.io/api") == "v0.37.2"
    assert set(build.binaries.values()) == {
        "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
        "kubeadm",
    }  # fmt: skip


def test_a_build_with_a_test_binary_is_done_only_with_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(config, "CACHE", tmp_path)
    suite = builds.conformance("v1.37.2")
    assert suite.tests == {"k8s.io/kubernetes/test/e2e": "e2e.test"}
    suite.directory.mkdir(parents=True)
    (suite.directory / ".complete").write_text(suite.version)
    for name in suite.binaries.values():
        suite.binary(name).touch()
    assert not suite.done  # e2e.test, made by `go test -c`, is still missing
    suite.binary("e2e.test").touch()
    assert suite.done


def test_hypervisor_names_fit_linux_interface_names() -> None:
    for hv in config.hypervisors(public=2, private=9):
        assert len(hv.veth) <= 15 and len(hv.netns) <= 64
    assert len({hv.address for hv in config.hypervisors(2, 9)}) == 11
