"""The one fact about cgroups that both sides of a join need: on cgroup v1
a kubelet wants its cgroup root in every hierarchy before it starts (it
does not make it). `node join` makes it for the kubelet it starts;
`oneinfra local` for the kubelet of a stock `kubeadm join`."""

from __future__ import annotations

from pathlib import Path

CGROUPS = Path("/sys/fs/cgroup")


def v1() -> bool:
    """cgroup v1 (or hybrid): no unified hierarchy at the top."""
    return not (CGROUPS / "cgroup.controllers").exists()


def make_root(root: str) -> None:
    """`root` in every v1 hierarchy (the unified one of a hybrid needs none)."""
    for hierarchy in CGROUPS.iterdir():
        if hierarchy.is_dir() and not hierarchy.is_symlink() and hierarchy.name != "unified":
            (hierarchy / root.strip("/")).mkdir(parents=True, exist_ok=True)
