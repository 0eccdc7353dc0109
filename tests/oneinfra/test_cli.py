"""The command line as a new user meets it: every command and option has a
help line, every listing works on an empty fleet, the client imports none
of the daemon's modules, and tab completion offers commands and names."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oneinfra.cli.parser import build_parser
from oneinfra.cli.progress import Display

from .daemon import Daemon

# Every layer a client command must not load (the import contract in
# pyproject.toml checks the code; this checks what a run really imports).
DAEMON_SIDE = ("oneinfra.daemon", "oneinfra.reconcile", "oneinfra.runtime", "oneinfra.storage",
               "oneinfra.render", "oneinfra.pki", "oneinfra.local", "eventstore")  # fmt: skip


def parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def test_every_command_and_option_has_a_help_line() -> None:
    for prog, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                listed = {a.dest: a.help for a in action._choices_actions}
                assert set(listed) == set(action.choices), prog
                assert all(listed.values()), f"{prog}: a command without help: {listed}"
            elif prog != "oneinfra eventstore":  # its own parser: checked below
                assert action.help, f"{prog}: {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("group", ["", "cluster", "hypervisor", "audit", "local", "eventstore"])
def test_each_groups_help_lists_its_commands_with_a_line_each(group: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oneinfra", *([group] if group else []), "--help"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    commands = {
        "": ["daemon", "hypervisor", "cluster", "history", "replay", "audit", "local",
             "completion", "version", "eventstore"],
        "cluster": ["create", "list", "show", "scale", "delete", "kubeconfig"],
        "hypervisor": ["add", "list", "show", "label", "remove"],
        "audit": ["verify"],
        "local": ["up", "list", "down"],
        "eventstore": ["verify", "info", "dump"],
    }[group]  # fmt: skip
    for command in commands:
        assert re.search(rf"^\s+{command}\s+\S", result.stdout, re.MULTILINE), (
            f"'{command}' is not listed with a help line:\n{result.stdout}"
        )


def imported_modules(*args: str, env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "oneinfra", *args],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_a_client_command_imports_no_daemon_module(tmp_path: Path) -> None:
    modules = imported_modules("cluster", "list", "--socket", str(tmp_path / "none.sock"))
    assert "oneinfra.cli.commands" in modules  # it did run the client
    assert not {m for m in modules if m.startswith(DAEMON_SIDE)}


def test_version_imports_neither_the_api_nor_asyncio() -> None:
    modules = imported_modules("version")
    assert "oneinfra.main" in modules
    heavy = (*DAEMON_SIDE, "oneinfra.api", "asyncio", "grpclib", "betterproto2", "yaml")
    assert not {m for m in modules if m.startswith(heavy)}


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[Daemon]:
    daemon = Daemon(tmp_path).start()
    yield daemon
    daemon.stop()


@pytest.mark.parametrize("output", ["table", "json", "yaml"])
def test_every_listing_works_on_an_empty_fleet(empty: Daemon, output: str) -> None:
    for command in (["cluster", "list"], ["hypervisor", "list"], ["history"],
                    ["replay", "--at", "0"]):  # fmt: skip
        result = empty.cli(*command, "-o", output, check=False)
        assert result.returncode == 0, f"{command}: {result.stderr}"
        assert "Traceback" not in result.stderr
    listed = empty.cli("cluster", "list").stdout.splitlines()
    assert listed == ["NAME  VERSION  REPLICAS  ENDPOINT  READY"]
    assert empty.json("hypervisor", "list") == []


def completions(line: str, tmp_path: Path, socket: Path | None = None) -> list[str]:
    """What the shell would offer for `line` (argcomplete's protocol)."""
    out = tmp_path / "completions"
    env = dict(os.environ, _ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)),
               _ARGCOMPLETE_STDOUT_FILENAME=str(out), _ARGCOMPLETE_IFS="\n")  # fmt: skip
    if socket is not None:
        env["ONEINFRA_SOCKET"] = str(socket)
    subprocess.run([sys.executable, "-m", "oneinfra"], env=env, timeout=30, check=False)
    return sorted(w.strip() for w in out.read_text().split("\n") if w.strip())


def test_completion_offers_commands_and_options(tmp_path: Path) -> None:
    assert completions("oneinfra cluster s", tmp_path) == [
        "scale", "schedule-backups", "set-lifetimes", "show",
    ]  # fmt: skip
    assert "--control-plane-replicas" in completions("oneinfra cluster scale a --con", tmp_path)


def test_completion_offers_names_from_the_daemon(empty: Daemon, tmp_path: Path) -> None:
    empty.add_hypervisors(private=1)
    empty.cli("cluster", "create", "alpha")
    empty.cli("cluster", "create", "beta")
    assert completions("oneinfra cluster show ", tmp_path, empty.socket) == ["alpha", "beta"]
    assert completions("oneinfra hypervisor show p", tmp_path, empty.socket) == ["priv0", "pub"]


def test_completion_without_a_daemon_offers_nothing_and_returns(tmp_path: Path) -> None:
    assert completions("oneinfra cluster show ", tmp_path, tmp_path / "none.sock") == []


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_shell_code(shell: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oneinfra", "completion", shell],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (
        result.returncode == 0 and "oneinfra" in result.stdout and "_ARGCOMPLETE" in result.stdout
    )


def test_local_list_without_hypervisors_says_so(tmp_path: Path) -> None:
    env = dict(os.environ, ONEINFRA_LOCAL_STATE=str(tmp_path / "state"))
    result = subprocess.run(
        [sys.executable, "-m", "oneinfra", "local", "list", "-o", "json"],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert result.returncode == 0 and json.loads(result.stdout) == []


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_wait_prints_each_change_once_off_a_terminal() -> None:
    out = io.StringIO()
    display = Display(out)
    display.show(["cluster a: pending", "  etcd pending"])
    display.show(["cluster a: pending", "  etcd running"])
    display.close()
    assert out.getvalue() == "cluster a: pending\n  etcd pending\n  etcd running\n"


def test_wait_redraws_in_place_on_a_terminal() -> None:
    out = Terminal()
    display = Display(out)
    display.show(["cluster a: pending"])
    display.show(["cluster a: ready"])
    display.close()
    assert "cluster a: ready" in out.getvalue()
    assert out.getvalue().count("\n") < 4  # redrawn, not appended line after line


def test_join_tokens_from_the_command_line(empty: Daemon) -> None:
    empty.add_hypervisors(private=1)
    empty.cli("cluster", "create", "prod")
    token = empty.cli(
        "cluster", "token", "create", "prod", "--description", "rack 4"
    ).stdout.strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)
    token_id, secret = token.split(".")
    listed = empty.json("cluster", "token", "list", "prod")
    assert [(t["id"], t["description"], t["expired"]) for t in listed] == [
        (token_id, "rack 4", False)
    ]
    ours, stock = empty.cli("cluster", "join-command", "prod", "--ttl", "1h").stdout.splitlines()
    for line, command in ((ours, "oneinfra node join"), (stock, "kubeadm join")):
        assert re.fullmatch(
            command + r" 192\.0\.2\.1:30000 --token [a-z0-9]{6}\.[a-z0-9]{16} "
            r"--discovery-token-ca-cert-hash sha256:[0-9a-f]{64}",
            line,
        ), line
    assert ours.split()[3:] == stock.split()[2:]  # one token, one hash
    revoked = empty.cli("cluster", "token", "revoke", "prod", token_id)
    assert "revoked" in revoked.stdout
    assert [t["id"] for t in empty.json("cluster", "token", "list", "prod")] != [token_id]
    again = empty.cli("cluster", "token", "revoke", "prod", token_id, check=False)
    assert again.returncode == 1 and "no join token" in again.stderr
    history = empty.cli("history", "--cluster", "prod").stdout
    assert f'token_id="{token_id}"' in history and secret not in history
    assert (
        empty.cli("cluster", "token", "create", "prod", "--ttl", "5s", check=False).returncode == 1
    )


def test_the_vpn_enabled_on_a_running_cluster_from_the_command_line(empty: Daemon) -> None:
    empty.add_hypervisors(private=1)
    empty.cli("cluster", "create", "shop")
    assert empty.json("cluster", "show", "shop")["vpnServerPublicKey"] == ""
    refused = empty.cli("cluster", "enable-vpn", "shop", "--vpn-cidr", "10.96.0.0/24", check=False)
    assert refused.returncode == 1 and "overlap" in refused.stderr, refused.stderr
    shown = json.loads(empty.cli("cluster", "enable-vpn", "shop", "-o", "json").stdout)
    assert (shown["vpnEnabled"], shown["vpnServerAddress"], shown["vpnPeers"]) == (
        True, "10.220.0.1", 0,
    )  # fmt: skip
    (server,) = [c for c in shown["components"] if c["role"] == "vpn"]
    assert shown["vpnEndpoint"] == f"192.0.2.1:{server['ports']['vpn']}"
    assert len(shown["vpnServerPublicKey"]) == 44
    again = empty.cli("cluster", "enable-vpn", "shop", "-o", "json")
    assert json.loads(again.stdout)["vpnServerPublicKey"] == shown["vpnServerPublicKey"]
    moved = empty.cli("cluster", "enable-vpn", "shop", "--vpn-cidr", "10.221.0.0/16", check=False)
    assert moved.returncode == 1 and "cannot change" in moved.stderr, moved.stderr
    history = empty.cli("history", "--cluster", "shop").stdout
    assert history.count("VpnEnabled") == 1
    unknown = empty.cli("cluster", "enable-vpn", "nowhere", check=False)
    assert unknown.returncode == 1 and "nowhere" in unknown.stderr, unknown.stderr


def test_certificate_lifetimes_and_renewal_from_the_command_line(empty: Daemon) -> None:
    empty.add_hypervisors(private=1)
    refused = empty.cli("cluster", "create", "prod", "--certificate-lifetime", "20s",
                        check=False)  # fmt: skip
    assert refused.returncode == 1 and "20 s is out of range" in refused.stderr, refused.stderr
    empty.cli("cluster", "create", "prod", "--certificate-lifetime", "30d")
    shown = empty.json("cluster", "show", "prod")
    assert shown["certificateLifetimeSeconds"] == 30 * 86_400
    listed = {c["id"]: c for c in shown["certificates"]}
    table = empty.cli("cluster", "show", "prod").stdout
    assert "CERTIFICATE" in table and "admin.conf" in table and "etcd/server" in table
    renewed = empty.json("cluster", "renew-certificates", "prod", "--certificate", "apiserver")
    after = {c["id"]: c for c in renewed["certificates"]}
    assert after["admin"] == listed["admin"]  # only what was asked for
    history = empty.cli("history", "--cluster", "prod").stdout
    assert re.search(r'CertificatesRenewed .*reason="asked" certificates=serving', history)
    unknown = empty.cli("cluster", "renew-certificates", "prod", "--component", "x" * 10_000,
                        check=False)  # fmt: skip
    assert unknown.returncode == 1 and "no control-plane replica" in unknown.stderr
    assert len(unknown.stderr) < 500  # the value is cut, not echoed whole
    assert empty.json("cluster", "list")[0]["certificates"] == []  # lists stay small


def test_certificate_lifetimes_changed_after_create_from_the_command_line(empty: Daemon) -> None:
    empty.add_hypervisors(private=1)
    empty.cli("cluster", "create", "prod", "--certificate-lifetime", "30d")
    changed = empty.json("cluster", "set-lifetimes", "prod", "--certificate-lifetime", "7d")
    assert changed["certificateLifetimeSeconds"] == 7 * 86_400
    assert changed["caLifetimeSeconds"] == 3650 * 86_400  # left as it was
    history = empty.cli("history", "--cluster", "prod").stdout
    assert re.search(r"CertificateLifetimesChanged .*leaf_lifetime=604800", history), history
    nothing = empty.cli("cluster", "set-lifetimes", "prod", check=False)
    assert nothing.returncode == 1 and "nothing to change" in nothing.stderr, nothing.stderr
    longer = empty.cli("cluster", "set-lifetimes", "prod", "--ca-lifetime", "1d", check=False)
    assert longer.returncode == 1 and "outlive their CA" in longer.stderr, longer.stderr
