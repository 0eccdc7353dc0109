"""Local hypervisors: real CRI hypervisors on one Linux machine, for trying
oneinfra out and for its end-to-end tests (`oneinfra local up|list|down`,
as the original oneinfra's oi-local-hypervisor-set).

One containerd per network namespace on a bridge (10.213.0.0/24), a local
registry that containerd mirrors registry.k8s.io and docker.io to, and the
upstream images under their production names, made from binaries built
from the Go module proxy or given by the user (sources.py). Every process
is started by us, recorded by pid, and stopped by that pid.

A product command, beside the CLI: it imports the model's versions and
oneinfra's errors, nothing of the daemon.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import config, images, sources, system
from .progress import Reporter


def up(
    public: int, private: int, binaries: Path | None = None, reporter: Reporter | None = None
) -> list[dict[str, Any]]:
    """Bring up (or keep) `public` + `private` hypervisors; returns them."""
    reporter = reporter or Reporter()
    system.require_root_linux()
    system.install_packages(reporter)
    found = sources.from_directory(binaries, reporter) if binaries else sources.built(reporter)
    hypervisors = config.hypervisors(public, private)
    state = system.load_state()
    state["crictl"] = str(found.crictl)
    state["sources"] = found.as_data()
    system.network_up(hypervisors)
    system.registry_up(state)
    catalogue = images.catalogue(found)
    with reporter.step("images", None) as step:
        step.phase("assembling and pushing to the local registry", total=len(catalogue))
        started, pushed = time.monotonic(), 0
        for image in catalogue:
            pushed += images.push(image)
            step.advance()
    reporter.say(
        f"images: {pushed} pushed in {time.monotonic() - started:.0f} s, the rest were there"
    )
    for hv in hypervisors:
        system.containerd_up(hv, state)
    state["hypervisors"] = [hv.name for hv in hypervisors]
    state["layout"] = {"public": public, "private": private}
    system.save_state(state)
    return status()


def status() -> list[dict[str, Any]]:
    """The hypervisors that run, as `oneinfra hypervisor add` takes them."""
    state = system.load_state()
    layout = state.get("layout") or {"public": 0, "private": 0}
    return [
        {
            "name": hv.name,
            "role": hv.role,
            "address": hv.address,
            "endpoint": f"unix://{hv.socket}",
            "socket": str(hv.socket),
            "dataDir": str(hv.data_dir),
        }
        for hv in config.hypervisors(**layout)  # type: ignore[arg-type]
        if f"containerd-{hv.name}" in state["pids"]  # type: ignore[operator]
    ]


def down() -> None:
    """Stop everything `up` started and remove its state."""
    system.require_root_linux()
    state = system.load_state()
    layout = state.get("layout") or {"public": 1, "private": 3}
    hypervisors = config.hypervisors(**layout)  # type: ignore[arg-type]
    for hv in hypervisors:
        system.containerd_down(hv, state)
    system.stop("registry", state)
    system.network_down(hypervisors)
    system.remove_trees(config.STATE, config.RUN)
