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

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .. import cgroups
from ..errors import LocalError
from . import config, images, sources, system
from .progress import Reporter


def up(
    public: int,
    private: int,
    binaries: Path | None = None,
    reporter: Reporter | None = None,
    workers: int = 0,
    behind_nat: int = 0,
) -> list[dict[str, Any]]:
    """Bring up (or keep) `public` + `private` hypervisors and `workers`
    worker machines (no kubelet yet: `join` starts it), the last `behind_nat`
    of them each behind a NAT of its own; returns them all."""
    reporter = reporter or Reporter()
    system.require_root_linux()
    system.install_packages(reporter)
    found = sources.from_directory(binaries, reporter) if binaries else sources.built(reporter)
    hypervisors = config.hypervisors(public, private)
    if behind_nat > workers:
        raise LocalError(f"{behind_nat} workers behind NAT, of {workers} workers in all?")
    machines = config.workers(workers, behind_nat)
    if machines and not found.cni_plugins:
        raise LocalError("workers need the CNI plugins: build them (leave out --binaries)")
    state = system.load_state()
    state["crictl"] = str(found.crictl)
    state["sources"] = found.as_data()
    system.network_up([*hypervisors, *machines])
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
        system.containerd_up(hv, state, found.cni_plugins)
    for worker in machines:
        system.worker_up(worker, found.cni_plugins, state)
    state["hypervisors"] = [hv.name for hv in hypervisors]
    state["layout"] = {"public": public, "private": private}
    state["workers"] = workers
    state["behind_nat"] = behind_nat
    system.save_state(state)
    return status()


def status() -> list[dict[str, Any]]:
    """The machines that run: hypervisors as `oneinfra hypervisor add` takes
    them, and workers (role "worker"), which are not hypervisors."""
    state = system.load_state()
    layout = state.get("layout") or {"public": 0, "private": 0}
    machines: list[config.Machine] = [
        *config.hypervisors(**layout),  # type: ignore[arg-type]
        *workers_in(state),
    ]
    pids: dict[str, int] = state["pids"]  # type: ignore[assignment]
    return [
        {
            "name": m.name,
            "role": m.role,
            "address": m.address,
            "endpoint": f"unix://{m.socket}",
            "socket": str(m.socket),
            "dataDir": str(m.data_dir) if isinstance(m, config.HypervisorSpec) else None,
        }
        for m in machines
        if f"containerd-{m.name}" in pids
    ]


def workers_in(state: dict[str, object]) -> list[config.WorkerSpec]:
    count, behind_nat = state.get("workers", 0), state.get("behind_nat", 0)
    return config.workers(
        count if isinstance(count, int) else 0, behind_nat if isinstance(behind_nat, int) else 0
    )


def down() -> None:
    """Stop everything `up` started and remove its state."""
    system.require_root_linux()
    state = system.load_state()
    layout = state.get("layout") or {"public": 1, "private": 3}
    hypervisors = config.hypervisors(**layout)  # type: ignore[arg-type]
    machines = workers_in(state)
    for worker in machines:
        system.worker_down(worker, state)
    for hv in hypervisors:
        system.containerd_down(hv, state)
    system.stop("registry", state)
    system.network_down([*hypervisors, *machines])
    system.remove_trees(config.STATE, config.RUN)
    system.host_mount_points_down(state)


def worker(name: str) -> config.WorkerSpec:
    found = next((w for w in workers_in(system.load_state()) if w.name == name), None)
    if found is None:
        raise LocalError(
            f"no local worker {name!r} runs; 'oneinfra local up --workers N' starts them"
        )
    return found


def join(name: str, join_args: list[str], kubernetes_version: str | None = None) -> dict[str, Any]:
    """`oneinfra node join` inside worker `name`, its kubelet kept by pid
    (the worker's init system); its refusal, if any, is this one's."""
    machine = worker(name)
    state = system.load_state()
    binaries = sources.current().kubernetes
    version = kubernetes_version or config.KUBERNETES_VERSIONS[0]
    kubelet = binaries.get(version, {}).get("kubelet")
    if kubelet is None:
        raise LocalError(f"no kubelet {version} among the local binaries")
    command = system.in_worker(
        machine, sys.executable, "-m", "oneinfra", "node", "join", *join_args, "--foreground",
        "--kubelet", str(kubelet), "--node-name", machine.name, "--node-ip", machine.address,
        "--cgroup-root", machine.cgroup_root,
    )  # fmt: skip
    log = machine.root / "kubelet.log"
    log.unlink(missing_ok=True)
    pid = system.start(f"kubelet-{machine.name}", command, log, state)
    try:
        # Longer than node join may take: its discovery waits 60 s by default.
        system.wait_for(f"the join of {name}", lambda: runs_or_gone(pid, kubelet), JOIN_TIMEOUT)
    except LocalError:
        system.stop(f"kubelet-{machine.name}", state)  # nothing left running
        raise
    if not system.alive(pid):
        system.stop(f"kubelet-{machine.name}", state)
        raise LocalError(last_line(log) or f"the join of {name} failed, and said nothing")
    return {"name": name, "address": machine.address, "kubelet": str(kubelet), "log": str(log)}


def kubeadm_join(
    name: str, join_args: list[str], kubernetes_version: str | None = None
) -> dict[str, Any]:
    """Stock `kubeadm join` inside worker `name`, the kubelet started as
    kubeadm's systemd drop-in would (the worker has no systemd: kubeadm
    says it cannot start it, and waits for it). The machine's own kubelet
    settings (cgroup v1, cgroupfs, its cgroup root) go in as a kubeadm
    patch, as an operator would give them."""
    machine = worker(name)
    state = system.load_state()
    binaries = sources.current().kubernetes.get(
        kubernetes_version or config.KUBERNETES_VERSIONS[0], {}
    )
    kubelet, kubeadm = binaries.get("kubelet"), binaries.get("kubeadm")
    if kubelet is None or kubeadm is None:
        raise LocalError("no kubelet and kubeadm among the local binaries")
    patches = system.kubeadm_patches(machine)
    cgroups.make_root(machine.cgroup_root)
    log = machine.root / "kubeadm.log"
    with log.open("w") as out:
        joining = subprocess.Popen(
            system.in_worker(machine, str(kubeadm), "join", *join_args, "--node-name", name,
                             "--patches", str(patches), "--ignore-preflight-errors=all"),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    flags = machine.own("/var/lib/kubelet") / "kubeadm-flags.env"
    started = False
    deadline = time.monotonic() + KUBEADM_TIMEOUT
    while joining.poll() is None and time.monotonic() < deadline:
        if not started and flags.exists() and (flags.parent / "config.yaml").exists():
            command = system.in_worker(machine, str(kubelet), *system.kubeadm_kubelet_args(flags),
                                       f"--node-ip={machine.address}")  # fmt: skip
            system.start(f"kubelet-{name}", command, machine.root / "kubelet.log", state)
            started = True
        time.sleep(0.2)
    if joining.poll() is None:
        joining.kill()
    if joining.wait() != 0:
        system.stop(f"kubelet-{name}", state)
        raise LocalError(f"kubeadm join failed: {last_line(log) or 'it said nothing'}")
    return {"name": name, "address": machine.address, "kubelet": str(kubelet),
            "log": str(machine.root / "kubelet.log")}  # fmt: skip


KUBEADM_TIMEOUT = 300.0
JOIN_TIMEOUT = 180.0


def last_line(log: Path) -> str:
    """What a join said last (its refusal), or "" if nothing."""
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def runs_or_gone(pid: int, kubelet: Path) -> bool:
    """`node join` execs the kubelet once it has joined: same pid, new binary."""
    if not system.alive(pid):
        return True
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")) == kubelet.resolve()
    except OSError:  # in the middle of an exec, or just gone: look again
        return False


def rotate_trust(name: str) -> str:
    """`oneinfra node rotate-trust` inside worker `name`, then its kubelet
    restarted with the command line it runs with (this is the worker's init
    system); what the node command said."""
    machine = worker(name)
    state = system.load_state()
    pids: dict[str, int] = state["pids"]  # type: ignore[assignment]
    pid = pids.get(f"kubelet-{name}")
    if pid is None or not system.alive(pid):
        raise LocalError(f"worker {name}'s kubelet does not run: join it to a cluster first")
    command = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    done = subprocess.run(
        system.in_worker(machine, sys.executable, "-m", "oneinfra", "node", "rotate-trust",
                         "--no-restart", "--node-name", name),
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    if done.returncode != 0:
        raise LocalError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else
                         f"node rotate-trust in {name} failed, and said nothing")  # fmt: skip
    system.stop(f"kubelet-{name}", state)
    system.start(f"kubelet-{name}", system.in_worker(machine, *command),
                 machine.root / "kubelet.log", state)  # fmt: skip
    return done.stderr


def leave(name: str) -> None:
    """Worker `name` leaves its cluster, as `kubeadm reset` would have it:
    nothing of the join is left, and it may join again."""
    system.worker_leave(worker(name), system.load_state())
