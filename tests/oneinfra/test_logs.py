"""The daemon's log: readable text by default, JSON one event a line when
asked, with the cluster's and hypervisor's names as fields; the reconciler
says each action it takes."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import anyio
import pytest

from oneinfra.daemon import logs
from oneinfra.model import commands as cmd

from .daemon import Daemon
from .fakefleet import fake_fleet


def record(message: str, level: int = logging.INFO, **fields: object) -> logging.LogRecord:
    made = logging.LogRecord("oneinfra.reconciler", level, __file__, 1, message, (), None)
    for key, value in fields.items():
        setattr(made, key, value)
    return made


def test_a_text_line_is_prefixed_and_shows_its_fields_and_a_level_that_is_news() -> None:
    text = logs.TextFormatter()
    assert text.format(record("started")) == "oneinfra daemon: started"
    line = text.format(record("etcd: refused", logging.WARNING, cluster="prod", hypervisor="h1"))
    assert line == "oneinfra daemon: warning: etcd: refused (cluster=prod hypervisor=h1)"


def test_a_json_line_is_one_object_with_the_time_level_logger_and_fields() -> None:
    line = logs.JSONFormatter().format(record('said "hi"\nthere', cluster="prod", component="etcd"))
    assert "\n" not in line  # one event, one line, whatever the message holds
    entry = json.loads(line)
    assert entry["message"] == 'said "hi"\nthere'
    assert entry["level"] == "info" and entry["logger"] == "oneinfra.reconciler"
    assert entry["cluster"] == "prod" and entry["component"] == "etcd"
    assert "hypervisor" not in entry  # a field not given is not made up
    assert entry["time"].endswith("Z") and len(entry["time"]) == len("2026-12-07T06:00:00.000Z")


def test_a_traceback_stays_inside_its_json_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(logs.JSONFormatter().format(failed))
    assert "RuntimeError: boom" in entry["error"]


def test_configure_routes_every_logger_and_refuses_an_unknown_format() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        logs.configure("json", stream)
        logging.getLogger("grpclib.somewhere").warning("a library's line")
        logging.getLogger("httpx").info("HTTP Request: GET /readyz")  # a probe: not news
        logs.say("serving", cluster="prod")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["message"] for line in lines] == ["a library's line", "serving"]
        assert lines[1]["cluster"] == "prod"
        with pytest.raises(ValueError, match="--log-format 'xml'"):
            logs.configure("xml")
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_an_unknown_field_is_a_programming_error() -> None:
    with pytest.raises(AssertionError, match="no such log field"):
        logs.fields(tenant="x")


def test_the_daemon_logs_json_lines_when_asked(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, "--log-format", "json").start()
    daemon.add_hypervisors(private=1)
    assert daemon.stop() == 0
    entries = [json.loads(line) for line in daemon.log.read_text().splitlines()]
    messages = [entry["message"] for entry in entries]
    assert messages[0].startswith("serving on ")
    assert "stopping on SIGTERM" in messages and messages[-1] == "stopped (on SIGTERM)"
    assert {entry["logger"] for entry in entries} == {"oneinfra.daemon"}


def test_the_daemon_logs_readable_text_by_default(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path).start()
    assert daemon.stop() == 0
    lines = daemon.log.read_text().splitlines()
    assert lines[0].startswith("oneinfra daemon: serving on ")
    assert lines[-1] == "oneinfra daemon: stopped (on SIGTERM)"


@pytest.mark.anyio
async def test_the_reconciler_says_each_action_with_the_cluster_hypervisor_and_component(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oneinfra.reconciler")
    async with fake_fleet(tmp_path) as (service, _):
        await service.execute(cmd.CreateCluster(name="prod"))
        deadline = anyio.current_time() + 20
        while not any(getattr(r, "component", "") == "control-plane-0" for r in caplog.records):
            assert anyio.current_time() < deadline, "the control plane's pod created, and said"
            await anyio.sleep(0.05)
    # The control plane's pod (etcd and the Kubernetes components) is one.
    created = [r for r in caplog.records if getattr(r, "component", "") == "control-plane-0"]
    assert (
        created[0]
        .getMessage()
        .startswith("control-plane-0: created the pod, started etcd, kube-apiserver")
    )
    assert created[0].__dict__["cluster"] == "prod"  # its name, not its id
    assert created[0].__dict__["hypervisor"] == "priv0"
