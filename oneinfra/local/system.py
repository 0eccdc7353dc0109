"""The host side: packages, the network, the registry, containerd per hypervisor.

Every process is started by us, recorded by pid in the state file, and
stopped by that pid: never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import LocalError
from . import config
from .progress import Reporter

STATE_FILE = config.STATE / "env.json"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise LocalError(
            f"{' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def require_root_linux() -> None:
    if not Path("/proc/self/ns/net").exists():
        raise LocalError("running local hypervisors needs Linux (network namespaces)")
    if os.geteuid() != 0:
        raise LocalError("running local hypervisors needs root (namespaces, containerd, apt)")


def install_packages(reporter: Reporter) -> None:
    missing = [
        p
        for p in config.DEBIAN_PACKAGES
        if run("dpkg-query", "-W", "-f=${Status}", p, check=False).stdout != "install ok installed"
    ]
    if not missing:
        return
    reporter.say(f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise LocalError(f"apt-get install {' '.join(missing)} failed: {result.stderr[-2000:]}")


# -- state --------------------------------------------------------------------------


def load_state() -> dict[str, object]:
    if STATE_FILE.exists():
        return json.loads(STATE_FILE.read_text())  # type: ignore[no-any-return]
    return {"pids": {}, "hypervisors": []}


def save_state(state: dict[str, object]) -> None:
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is gone


def start(name: str, args: list[str], log: Path, state: dict[str, object]) -> int:
    pids: dict[str, int] = state["pids"]  # type: ignore[assignment]
    if name in pids and alive(pids[name]):
        return pids[name]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
        )
    pids[name] = process.pid
    save_state(state)
    return process.pid


def stop(name: str, state: dict[str, object]) -> None:
    pids: dict[str, int] = state["pids"]  # type: ignore[assignment]
    pid = pids.pop(name, None)
    if pid is not None and alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    save_state(state)


def wait_for(what: str, ready: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise LocalError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.1)


# -- network ------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return run("ip", "link", "show", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return name in run("ip", "netns", "list").stdout.split()


def network_up(hypervisors: Sequence[config.Machine]) -> None:
    if not link_exists(config.BRIDGE):
        run("ip", "link", "add", config.BRIDGE, "type", "bridge")
        run(
            "ip",
            "addr",
            "add",
            f"{config.HOST_ADDRESS}/{config.PREFIX_LENGTH}",
            "dev",
            config.BRIDGE,
        )
    run("ip", "link", "set", config.BRIDGE, "up")
    for hv in hypervisors:
        if isinstance(hv, config.WorkerSpec) and hv.router is not None:
            site_up(hv, hv.router)
            continue
        if not netns_exists(hv.netns):
            run("ip", "netns", "add", hv.netns)
        if not link_exists(hv.veth):
            run(
                "ip",
                "link",
                "add",
                hv.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                hv.netns,
            )
            run(
                "ip",
                "-n",
                hv.netns,
                "addr",
                "add",
                f"{hv.address}/{config.PREFIX_LENGTH}",
                "dev",
                "eth0",
            )
        run("ip", "link", "set", hv.veth, "master", config.BRIDGE, "up")
        run("ip", "-n", hv.netns, "link", "set", "lo", "up")
        run("ip", "-n", hv.netns, "link", "set", "eth0", "up")
        run("ip", "-n", hv.netns, "route", "replace", "default", "via", config.HOST_ADDRESS)


SITE_RULES = """\
add table ip oneinfra_site
delete table ip oneinfra_site
table ip oneinfra_site {
    chain forward {
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "eth0" accept
    }
    chain postrouting {
        type nat hook postrouting priority 100;
        oifname "eth0" masquerade
    }
}
"""


def site_up(worker: config.WorkerSpec, router: str) -> None:
    """A site behind NAT: its router on the bridge (at `router`), the worker
    on the router's LAN only. The router masquerades what leaves and lets
    in only the answers: nobody outside opens a connection to the worker."""
    site = worker.site
    if not netns_exists(site):
        run("ip", "netns", "add", site)
    if not link_exists(worker.router_veth):
        run("ip", "link", "add", worker.router_veth, "type", "veth", "peer", "name", "eth0",
            "netns", site)  # fmt: skip
        run("ip", "-n", site, "addr", "add", f"{router}/{config.PREFIX_LENGTH}", "dev", "eth0")
    run("ip", "link", "set", worker.router_veth, "master", config.BRIDGE, "up")
    for link in ("lo", "eth0"):
        run("ip", "-n", site, "link", "set", link, "up")
    run("ip", "-n", site, "route", "replace", "default", "via", config.HOST_ADDRESS)
    if not netns_exists(worker.netns):
        run("ip", "netns", "add", worker.netns)
    lan = f"{config.SITE_PREFIX_LENGTH}"
    if run("ip", "-n", site, "link", "show", "lan0", check=False).returncode != 0:
        run("ip", "-n", site, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0",
            "netns", worker.netns)  # fmt: skip
        run("ip", "-n", site, "addr", "add", f"{config.SITE_LAN}.1/{lan}", "dev", "lan0")
        run("ip", "-n", worker.netns, "addr", "add", f"{worker.address}/{lan}", "dev", "eth0")
    run("ip", "-n", site, "link", "set", "lan0", "up")
    for link in ("lo", "eth0"):
        run("ip", "-n", worker.netns, "link", "set", link, "up")
    run("ip", "-n", worker.netns, "route", "replace", "default", "via", f"{config.SITE_LAN}.1")
    run("nsenter", f"--net=/run/netns/{site}", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    rules = config.STATE / f"site-{worker.name}.nft"
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(SITE_RULES)
    run("nsenter", f"--net=/run/netns/{site}", "nft", "-f", str(rules))


def network_down(hypervisors: Sequence[config.Machine]) -> None:
    for hv in hypervisors:
        if isinstance(hv, config.WorkerSpec) and hv.router is not None:
            if link_exists(hv.router_veth):
                run("ip", "link", "del", hv.router_veth)
            if netns_exists(hv.site):
                run("ip", "netns", "del", hv.site)
        if link_exists(hv.veth):
            run("ip", "link", "del", hv.veth)
        if netns_exists(hv.netns):
            run("ip", "netns", "del", hv.netns)
    if link_exists(config.BRIDGE):
        run("ip", "link", "del", config.BRIDGE)


# -- the registry -------------------------------------------------------------------


def registry_up(state: dict[str, object]) -> None:
    root = config.STATE / "registry"
    root.mkdir(parents=True, exist_ok=True)
    settings = root / "config.yml"
    settings.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {config.REGISTRY}\n"
    )
    start("registry", ["docker-registry", "serve", str(settings)], root / "registry.log", state)
    wait_for("the registry", lambda: registry_answers())


def registry_answers() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{config.REGISTRY}/v2/", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# -- containerd per hypervisor ---------------------------------------------------------


def containerd_config(
    root: Path, state: str, socket: str, certs: Path, cni: tuple[str, str] | None = None
) -> str:
    """A hypervisor's or a worker's containerd; `cni`: the plugins' and their
    configuration's directories, for pods with networks of their own (a
    worker's all, a hypervisor's VPN servers)."""
    cni_section = (
        ""
        if cni is None
        else '\n  [plugins."io.containerd.grpc.v1.cri".cni]\n'
        f'    bin_dir = "{cni[0]}"\n    conf_dir = "{cni[1]}"\n'
    )
    return f"""version = 2
root = "{root / "root"}"
state = "{state}"

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:{config.PAUSE_TAG}"
  # Without it every sandbox fails here: "failed to update /proc/self/oom_score_adj".
  restrict_oom_score_adj = true
{cni_section}
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{certs}"
"""


def mirrors(hv: config.Machine) -> None:
    for host in config.MIRRORED:
        directory = hv.root / "certs.d" / host
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "hosts.toml").write_text(
            f'server = "https://{host}"\n\n'
            f'[host."http://{config.REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'
        )


HYPERVISOR_POD_SUBNET = "10.89.0.0/24"  # each hypervisor's own, in its own namespace


def hypervisor_cni(hv: config.HypervisorSpec, plugins: list[Path]) -> tuple[str, str] | None:
    """The plugins and a bridge network with host ports (portmap), for the
    pods that have a network of their own (VPN servers); None without plugins."""
    if not plugins:
        return None
    bin_dir, conf_dir = hv.root / "cni" / "bin", hv.root / "cni" / "net.d"
    bin_dir.mkdir(parents=True, exist_ok=True)
    conf_dir.mkdir(parents=True, exist_ok=True)
    for plugin in plugins:
        target = bin_dir / plugin.name
        if not target.exists():
            shutil.copy2(plugin, target)
    network = {
        "cniVersion": "1.0.0",
        "name": f"oneinfra-{hv.name}",  # host-local's leases, apart from other hypervisors'
        "plugins": [
            {
                "type": "bridge",
                "bridge": "oicni0",
                "isGateway": True,
                "ipMasq": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": HYPERVISOR_POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (conf_dir / "10-oneinfra.conflist").write_text(json.dumps(network, indent=2) + "\n")
    return str(bin_dir), str(conf_dir)


def containerd_up(
    hv: config.HypervisorSpec, state: dict[str, object], cni_plugins: list[Path] | None = None
) -> None:
    hv.root.mkdir(parents=True, exist_ok=True)
    hv.socket.parent.mkdir(parents=True, exist_ok=True)
    mirrors(hv)
    settings = hv.root / "config.toml"
    settings.write_text(
        containerd_config(hv.root, str(config.RUN / hv.name / "state"), str(hv.socket),
                          hv.root / "certs.d", hypervisor_cni(hv, cni_plugins or []))
    )  # fmt: skip
    start(
        f"containerd-{hv.name}",
        # nsenter --net, not ip netns exec: that one also remounts /sys, which
        # hides the cgroup mounts runc needs ("no cgroup mount found").
        ["nsenter", f"--net=/run/netns/{hv.netns}", "containerd", "--config", str(settings)],
        hv.root / "containerd.log",
        state,
    )
    wait_for(f"containerd of {hv.name}", lambda: crictl(hv, "version", check=False).returncode == 0)


def crictl(hv: config.Machine, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = Path(str(load_state().get("crictl") or "crictl"))
    settings = config.STATE / "crictl.yaml"  # flags say it all; an empty file stops its warning
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.touch()
    return run(
        str(binary),
        "--config",
        str(settings),
        "--runtime-endpoint",
        f"unix://{hv.socket}",
        "--image-endpoint",
        f"unix://{hv.socket}",
        "--timeout",
        "60s",
        *args,
        check=check,
    )


def containerd_down(hv: config.Machine, state: dict[str, object]) -> None:
    """Remove every pod it runs (their shims outlive containerd), then stop it."""
    pids: dict[str, int] = state["pids"]  # type: ignore[assignment]
    pid = pids.get(f"containerd-{hv.name}")
    if pid is not None and alive(pid) and hv.socket.exists():
        crictl(hv, "rmp", "--all", "--force", check=False)
    stop(f"containerd-{hv.name}", state)


def mounts_under(*roots: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4]
        if any(mount_point == str(r) or mount_point.startswith(str(r) + "/") for r in roots):
            found.append(mount_point)
    return found


def remove_trees(*roots: Path) -> None:
    """rm -rf, but never through a mount point left by a container."""
    for mount_point in sorted(mounts_under(*roots), key=len, reverse=True):
        run("umount", "--lazy", mount_point, check=False)
    leftover = mounts_under(*roots)
    if leftover:
        raise LocalError(
            f"mounts remain under the state, not removing it: {', '.join(leftover[:3])}"
        )
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


# -- workers: a network and a mount namespace each, their own containerd ------------


def mount_points() -> set[str]:
    return {line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()}


def private_directory(directory: Path) -> None:
    """A directory that is a private mount of itself: a namespace file can
    be bound in it (not where propagation is shared, as on /run)."""
    directory.mkdir(parents=True, exist_ok=True)
    if str(directory) not in mount_points():
        run("mount", "--bind", str(directory), str(directory))
        run("mount", "--make-private", str(directory))


def node_mounts_up(worker: config.WorkerSpec, state: dict[str, object]) -> None:
    """The worker's mount namespace, in which each of config.NODE_PATHS is
    one of its own directories; made once, kept by its file under RUN."""
    private_directory(worker.mount_namespace.parent)
    made: list[str] = state.setdefault("made_on_host", [])  # type: ignore[assignment]
    for path in config.NODE_PATHS:
        worker.own(path).mkdir(parents=True, exist_ok=True)
        if not Path(path).exists():  # the mount point, an empty directory on the host
            Path(path).mkdir(parents=True)
            made.append(path)
    save_state(state)
    if str(worker.mount_namespace) in mount_points():
        return
    worker.mount_namespace.touch()
    binds = " && ".join(f"mount --bind {worker.own(p)} {p}" for p in config.NODE_PATHS)
    # unshare binds the new namespace to the file and runs the mounts in it.
    run("unshare", f"--mount={worker.mount_namespace}", "--propagation", "private",
        "sh", "-c", binds)  # fmt: skip


def in_worker(worker: config.WorkerSpec, *args: str) -> list[str]:
    """A command line run inside the worker: its network and its mounts.
    nsenter, not ip netns exec: that one also remounts /sys, which hides the
    cgroup mounts runc needs."""
    return ["nsenter", f"--net=/run/netns/{worker.netns}", f"--mount={worker.mount_namespace}",
            *args]  # fmt: skip


def node_sysctls(worker: config.WorkerSpec) -> None:
    """Per network namespace: a node forwards its pods' packets, and bridged
    packets pass its rules (Services)."""
    for setting in ("net.ipv4.ip_forward=1", "net.bridge.bridge-nf-call-iptables=1"):
        run("nsenter", f"--net=/run/netns/{worker.netns}", "sysctl", "-qw", setting, check=False)


def worker_up(worker: config.WorkerSpec, cni_plugins: list[Path], state: dict[str, object]) -> None:
    """A worker machine without its kubelet: `join` starts that."""
    worker.root.mkdir(parents=True, exist_ok=True)
    node_mounts_up(worker, state)
    node_sysctls(worker)
    for plugin in cni_plugins:  # what a distribution's CNI plugins package installs
        target = worker.own("/opt/cni/bin") / plugin.name
        if not target.exists():
            shutil.copy2(plugin, target)
    mirrors(worker)
    settings = worker.root / "config.toml"
    # Paths inside the worker: /run/containerd and the CNI directories are its own.
    settings.write_text(
        containerd_config(worker.root, "/run/containerd/state",
                          "/run/containerd/containerd.sock", worker.root / "certs.d",
                          ("/opt/cni/bin", "/etc/cni/net.d"))
    )  # fmt: skip
    start(f"containerd-{worker.name}", in_worker(worker, "containerd", "--config", str(settings)),
          worker.root / "containerd.log", state)  # fmt: skip
    wait_for(
        f"containerd of {worker.name}",
        lambda: crictl(worker, "version", check=False).returncode == 0,
    )


def worker_down(worker: config.WorkerSpec, state: dict[str, object]) -> None:
    """Its kubelet, its pods, its containerd, its VPN tunnel (wireguard-go
    would outlive the namespace); then its mounts."""
    stop(f"kubelet-{worker.name}", state)
    run("ip", "-n", worker.netns, "link", "del", config.VPN_INTERFACE, check=False)
    containerd_down(worker, state)
    if str(worker.mount_namespace) in mount_points():
        run("umount", str(worker.mount_namespace), check=False)


def host_mount_points_down(state: dict[str, object]) -> None:
    """The empty directories made on the host for the workers' mounts."""
    made: list[str] = state.get("made_on_host", [])  # type: ignore[assignment]
    for path in sorted(made, key=len, reverse=True):
        with contextlib.suppress(OSError):  # not empty: something else uses it now
            Path(path).rmdir()
    state["made_on_host"] = []
    save_state(state)


def worker_leave(worker: config.WorkerSpec, state: dict[str, object]) -> None:
    """Back to a machine that never joined: the kubelet stopped, its pods
    removed, the volumes it mounted unmounted, the node's files gone, its
    VPN tunnel (wireguard-go ends with its interface) and its pod network's
    links removed: it may join again with another pod CIDR."""
    stop(f"kubelet-{worker.name}", state)
    crictl(worker, "rmp", "--all", "--force", check=False)
    for link in (config.VPN_INTERFACE, *config.NODE_LINKS):
        run("ip", "-n", worker.netns, "link", "del", link, check=False)
    pids: dict[str, int] = state["pids"]  # type: ignore[assignment]
    containerd = pids.get(f"containerd-{worker.name}")
    if containerd is not None and alive(containerd):
        inside = Path(f"/proc/{containerd}/mountinfo").read_text().splitlines()
        kubelet_mounts = [m for m in (line.split()[4] for line in inside)
                          if m.startswith("/var/lib/kubelet/")]  # fmt: skip
        for mount_point in sorted(kubelet_mounts, key=len, reverse=True):
            run(*in_worker(worker, "umount", "--lazy", mount_point), check=False)
    for path in ("/etc/kubernetes", "/var/lib/kubelet", "/etc/cni/net.d", "/run/flannel",
                 "/run/wireguard", "/var/log/pods", "/var/log/containers"):  # fmt: skip
        for child in worker.own(path).iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def kubeadm_patches(worker: config.WorkerSpec) -> Path:
    """What this machine needs of its kubelet, as a kubeadm patch: the
    cluster's kubelet-config knows nothing of a machine."""
    directory = worker.root / "kubeadm-patches"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "kubeletconfiguration+merge.yaml").write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\n"
        "kind: KubeletConfiguration\n"
        "failCgroupV1: false\n"
        "cgroupDriver: cgroupfs\n"
        f"cgroupRoot: {worker.cgroup_root}\n"
    )
    return directory


def kubeadm_kubelet_args(flags_file: Path) -> list[str]:
    """The kubelet's command line as kubeadm's systemd drop-in makes it:
    its kubeconfigs and configuration, then KUBELET_KUBEADM_ARGS."""
    import shlex

    kubeadm_args: list[str] = []
    for line in flags_file.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "KUBELET_KUBEADM_ARGS":
            kubeadm_args = shlex.split(shlex.split(value)[0]) if value.strip() else []
    return [
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf",
        "--config=/var/lib/kubelet/config.yaml",
        *kubeadm_args,
    ]
