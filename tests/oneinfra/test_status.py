"""Status, pure and on the board: what a cluster's phase is from its
components and its probe, and which transitions get recorded (each once,
none for a steady fleet, none again after a restart)."""

from __future__ import annotations

from oneinfra.model import events as ev
from oneinfra.model.kinds import DEGRADED, FAILED, PENDING, READY, RUNNING
from oneinfra.reconcile.board import StatusBoard
from oneinfra.reconcile.phases import Phase, cluster_phase

UP = Phase(RUNNING, "all containers running")
ANSWERS = Phase(READY, "")
SILENT = Phase(FAILED, "connection refused")


def test_ready_needs_the_api_to_answer_and_every_component_to_run() -> None:
    assert cluster_phase({"cp": UP, "ingress": UP}, ANSWERS).phase == READY
    assert cluster_phase({"cp": UP, "ingress": UP}, SILENT).phase == RUNNING
    assert cluster_phase({"cp": UP, "ingress": UP}, None).phase == RUNNING


def test_an_answering_cluster_with_a_broken_component_is_degraded() -> None:
    broken = Phase(DEGRADED, "not running: etcd")
    phase = cluster_phase({"cp-0": UP, "cp-1": broken, "ingress": UP}, ANSWERS)
    assert phase == Phase(DEGRADED, "cp-1: not running: etcd")


def test_a_silent_cluster_with_a_failed_component_has_failed_and_says_which() -> None:
    down = Phase(FAILED, "hypervisor h1 is unreachable")
    phase = cluster_phase({"cp-0": down, "ingress": UP}, SILENT)
    assert phase == Phase(FAILED, "cp-0: hypervisor h1 is unreachable")


def test_components_still_starting_keep_a_cluster_pending_or_running() -> None:
    starting = Phase(PENDING, "kube-scheduler will start once the API answers")
    assert cluster_phase({"cp": starting, "ingress": UP}, SILENT).phase == PENDING
    assert cluster_phase({"cp": starting, "ingress": UP}, ANSWERS).phase == RUNNING


def test_scaling_etcd_keeps_an_answering_cluster_running_not_ready() -> None:
    phase = cluster_phase({"cp": UP}, ANSWERS, etcd="etcd: a new member is catching up")
    assert phase == Phase(RUNNING, "etcd: a new member is catching up")


def recorded(board: StatusBoard) -> list[str]:
    return [getattr(e, "phase", "") for e in board.take_outbox()]


def test_each_transition_is_recorded_once_and_a_restart_records_none_again() -> None:
    board = StatusBoard()
    status = board.cluster("a", "id-a")
    board.set_component(status, "cp", UP)
    assert board.probed("a", "id-a", ["cp"], SILENT).phase == RUNNING
    assert board.probed("a", "id-a", ["cp"], ANSWERS).phase == READY
    assert board.probed("a", "id-a", ["cp"], ANSWERS).phase == READY  # steady
    assert recorded(board) == ["running", "running", "ready"]  # component, then cluster twice
    history = [
        ev.ComponentStatusChanged(cluster="a", cluster_id="id-a", component="cp",
                                  hypervisor="", phase="running", reason=""),
        ev.ClusterStatusChanged(cluster="a", cluster_id="id-a", phase="ready", reason=""),
    ]  # fmt: skip
    restarted = StatusBoard()
    restarted.load(history)
    status = restarted.cluster("a", "id-a")
    assert status.phase.phase == READY  # as last recorded, until observed
    # Before its components are observed again, a probe decides nothing.
    restarted.probed("a", "id-a", ["cp"], ANSWERS)
    restarted.set_component(status, "cp", UP)
    restarted.probed("a", "id-a", ["cp"], ANSWERS)
    assert restarted.take_outbox() == []


def test_a_board_folding_the_leaders_records_shows_what_it_saw_then_forgets_the_deleted() -> None:
    board = StatusBoard()
    board.as_recorded(ev.ComponentStatusChanged("a", "id-a", "ingress", "pub", RUNNING, ""), 1.0)
    board.as_recorded(ev.ClusterStatusChanged("a", "id-a", READY, ""), 2.0)
    status = board.clusters["id-a"]
    assert status.phase == Phase(READY, "") and status.since == 2.0
    assert status.components == {"ingress": Phase(RUNNING, "")}
    assert status.hypervisors == {"ingress": "pub"} and "id-a" in board.answering
    board.as_recorded(ev.ClusterStatusChanged("a", "id-a", FAILED, "ingress: gone"), 3.0)
    assert board.clusters["id-a"].probe is not None and "id-a" not in board.answering
    board.as_recorded(ev.HypervisorStatusChanged("pub", False, "refused"), 4.0)
    assert board.hypervisors["pub"].reachable is False
    board.as_recorded(
        ev.ClusterStatusChanged("a", "id-a", "deleted", "deleted from the fleet"), 5.0
    )
    assert "id-a" not in board.clusters
    # What it folded is what a leader taking over would not record again.
    assert board.recorded[("cluster", "id-a")] == "deleted"
