from __future__ import annotations

import argparse
import json
import sys
import time

from . import builds, config, images, system
from .log import say


def up(public: int, private: int) -> None:
    system.require_root_linux()
    system.install_packages()
    for build in builds.all_builds():
        took = builds.ensure(build)
        say(f"{build.name}: " + (f"built in {took:.0f} s" if took is not None else "cached"))
    builds.pause()
    hypervisors = config.hypervisors(public, private)
    state = system.load_state()
    system.network_up(hypervisors)
    system.registry_up(state)
    started = time.monotonic()
    pushed = sum(images.push(image) for image in images.catalogue())
    say(f"images: {pushed} pushed in {time.monotonic() - started:.0f} s, the rest were there")
    for hv in hypervisors:
        system.containerd_up(hv, state)
    state["hypervisors"] = [hv.name for hv in hypervisors]
    state["layout"] = {"public": public, "private": private}
    system.save_state(state)


def status() -> list[dict[str, str]]:
    state = system.load_state()
    layout = state.get("layout") or {"public": 0, "private": 0}
    return [
        {
            "name": hv.name,
            "role": hv.role,
            "address": hv.address,
            "endpoint": f"unix://{hv.socket}",
            "socket": str(hv.socket),
        }
        for hv in config.hypervisors(**layout)  # type: ignore[arg-type]
        if f"containerd-{hv.name}" in state["pids"]  # type: ignore[operator]
    ]


def down() -> None:
    system.require_root_linux()
    state = system.load_state()
    layout = state.get("layout") or {"public": 1, "private": 3}
    hypervisors = config.hypervisors(**layout)  # type: ignore[arg-type]
    for hv in hypervisors:
        system.containerd_down(hv, state)
    system.stop("registry", state)
    system.network_down(hypervisors)
    system.remove_trees(config.STATE, config.RUN)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.env", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="build, start and print the hypervisors")
    start.add_argument("--public", type=int, default=1)
    start.add_argument("--private", type=int, default=3)
    commands.add_parser("status", help="the hypervisors as JSON")
    commands.add_parser("down", help="stop everything and remove its state")
    args = parser.parse_args()
    try:
        if args.command == "up":
            up(args.public, args.private)
        if args.command == "down":
            down()
            return 0
        print(json.dumps(status(), indent=2))
    except system.EnvError as error:
        print(f"e2e-env: {error}", file=sys.stderr)
        return 1
    return 0


sys.exit(main())
