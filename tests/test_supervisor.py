"""``monitor supervise`` (issue 15, item 1): the sidecar's container never stops, whatever
``monitor serve`` does. The loop in virtual time (restarts, back-off, a hung server replaced,
SIGKILL after the grace, a stop passed on), then a real ``monitor supervise serve`` whose
server is SIGKILLed and comes back under a new pid while the supervisor keeps running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from server_process import free_port

from monitor.supervisor import Policy, supervise


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


class FakeChild:
    """Exits at ``exits_at`` (None: never on its own); obeys SIGTERM unless ``stubborn``."""

    def __init__(self, clock: Clock, pid: int, exits_at: float | None, stubborn: bool) -> None:
        self.clock, self.pid, self.exits_at, self.stubborn = clock, pid, exits_at, stubborn
        self.code: int | None = None
        self.signals: list[tuple[str, float]] = []

    def poll(self) -> int | None:
        if self.code is None and self.exits_at is not None and self.clock.now >= self.exits_at:
            self.code = 1
        return self.code

    def terminate(self) -> None:
        self.signals.append(("TERM", self.clock.now))
        if not self.stubborn:
            self.code = -15

    def kill(self) -> None:
        self.signals.append(("KILL", self.clock.now))
        self.code = -9


def run(
    lifetimes: list[float | None],
    *,
    healthy: bool = True,
    stubborn: bool = False,
    stop_at: float | None = None,
    policy: Policy | None = None,
) -> tuple[list[FakeChild], int, Clock]:
    """Children living ``lifetimes`` seconds each (None: until stopped); the loop stops after
    the last child starts (or at ``stop_at``)."""
    clock = Clock()
    children: list[FakeChild] = []

    def start() -> FakeChild:
        life = lifetimes[len(children)]
        child = FakeChild(
            clock, 100 + len(children), None if life is None else clock.now + life, stubborn
        )
        children.append(child)
        return child

    def stopping() -> bool:
        if stop_at is not None:
            return clock.now >= stop_at
        return len(children) == len(lifetimes) and children[-1].poll() is not None

    status = supervise(
        start,
        lambda: healthy,
        clock=clock,
        sleep=clock.sleep,
        stopping=stopping,
        policy=policy or Policy(),
    )
    return children, status, clock


def start_times(children: list[FakeChild]) -> list[float]:
    return [child.exits_at - life for child, life in zip(children, LIVES, strict=False)]  # type: ignore[operator]


LIVES = [5.0, 5.0, 5.0, 100.0, 5.0]


def test_an_exited_server_is_started_again_after_a_doubling_back_off_reset_once_settled() -> None:
    children, status, _ = run(LIVES)
    starts = start_times(children)
    # exits at 5, waits 1; at 11, waits 2; at 18, waits 4; runs 100 s (settled): waits 1 again
    assert starts == pytest.approx([0.0, 6.0, 13.0, 22.0, 123.0], abs=0.51)
    assert status == 1


def test_a_server_that_stops_answering_is_replaced() -> None:
    policy = Policy(check_every=10.0, hung_after=60.0)
    children, _, _ = run([None, None], healthy=False, stop_at=75.0, policy=policy)
    first = children[0]
    # checked at 10, 20, ... unanswered since it started: replaced at the check at 60 s
    assert first.signals == [("TERM", pytest.approx(60.0, abs=0.51))]
    assert len(children) == 2  # started again after the back-off, then stopped at 75 s
    assert children[1].signals == [("TERM", pytest.approx(75.0, abs=0.51))]


def test_a_server_ignoring_sigterm_is_killed_after_the_grace() -> None:
    policy = Policy(grace=10.0)
    children, status, _ = run([None], stubborn=True, stop_at=30.0, policy=policy)
    (child,) = children
    assert [name for name, _ in child.signals] == ["TERM", "KILL"]
    assert child.signals[1][1] - child.signals[0][1] == pytest.approx(10.0, abs=0.11)
    assert status == -9


def test_a_stop_is_passed_on_and_the_servers_status_returned() -> None:
    children, status, _ = run([None], stop_at=42.0)
    assert children[0].signals == [("TERM", pytest.approx(42.0, abs=0.51))]
    assert status == -15


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def wait_for(condition, what: str, seconds: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_a_killed_server_comes_back_while_the_supervisor_runs_on(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"""
storage: {{url: "sqlite:///{tmp_path / "m.db"}"}}
models:
  - name: m
    task: regression
    features: [{{name: x, type: numeric}}]
"""
    )
    supervisor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "supervise",
            "--check-every",
            "1",
            "--hung-after",
            "30",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        wait_for(lambda: answers(url), "the server answers")
        (first,) = child_pids(supervisor.pid)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: [p for p in child_pids(supervisor.pid) if p != first], "a new server")
        wait_for(lambda: answers(url), "the new server answers")
        assert supervisor.poll() is None  # the container's process never stopped
        (second,) = child_pids(supervisor.pid)
        assert second != first
    finally:
        supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, stderr  # the server's own status after a clean stop
    assert "exited with status -9" in stderr
    assert not child_pids(supervisor.pid)
