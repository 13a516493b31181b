"""Grading on a Dask LocalCluster: byte-identical to `-j 2`, explicit keys, faults, refusals, usage errors."""

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="Dask is an optional extra: pip install '.[dask]'")

from autograder import cluster  # noqa: E402
from autograder.cluster import ClusterError, ClusterSpec, insecure_address, task_key  # noqa: E402
from autograder.runner import grade_class  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "submissions"
COMPARED = ("results.json", "feedback.md", "gradebook.csv", "report.html")


def _class(folder: Path, students: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for student, example in students.items():
        shutil.copy(EXAMPLES / f"{example}.ipynb", folder / f"{student}.ipynb")
    return folder


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.name in COMPARED}


SMALL = {"ada": "solution", "bob": "solution", "cy": "log_sigmoid", "dee": "blank_template"}


@pytest.fixture(scope="module")
def small_class(tmp_path_factory):
    subs = _class(tmp_path_factory.mktemp("subs"), SMALL)
    (subs / "broken.ipynb").write_text("{ not json")
    reference = tmp_path_factory.mktemp("pool")
    grade_class(subs, reference, jobs=2)
    return subs, reference


@pytest.mark.slow  # a cluster's start-up and a class graded twice: minutes
def test_a_local_cluster_writes_the_same_bytes_as_a_pool(small_class, tmp_path):
    subs, reference = small_class
    outcomes = grade_class(subs, tmp_path, cluster=ClusterSpec(local_workers=2))
    assert {o.student for o in outcomes} == {*SMALL, "broken"}
    assert _tree(tmp_path) == _tree(reference)
    again = grade_class(subs, tmp_path, cluster=ClusterSpec(local_workers=1))  # a rerun resumes as -j does
    assert all(o.resumed for o in again if o.student != "broken")
    assert _tree(tmp_path) == _tree(reference)


def test_task_keys_are_explicit_stable_and_distinct_per_student():
    data = (EXAMPLES / "solution.ipynb").read_bytes()
    assert task_key("ada", data, 0) == task_key("ada", data, 0)
    assert len({task_key("ada", data, 0), task_key("bob", data, 0), task_key("ada", data, 1),
                task_key("ada", data + b" ", 0)}) == 4  # identical notebooks of two students are two tasks
    assert task_key("ada", data, 0).startswith(f"grade-{cluster.ASSIGNMENT}-")


@pytest.mark.parametrize("address, insecure", [
    ("tcp://127.0.0.1:8786", False), ("tcp://localhost:8786", False), ("tcp://[::1]:8786", False),
    ("tcp://10.0.0.5:8786", True), ("tcp://grader.example.org:8786", True), ("10.1.2.3:8786", True),
    ("tls://10.0.0.5:8786", False), ("inproc://x", False),
])
def test_plain_tcp_off_loopback_is_insecure(address, insecure):
    assert insecure_address(address) is insecure


@pytest.mark.parametrize("text", ["local", "local:0", "local:-1", "remote:2", "local:x"])
def test_a_malformed_cluster_flag_is_a_usage_error(text):
    with pytest.raises(ClusterError, match="local:N"):
        ClusterSpec.parse_local(text)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path):
    subs = _class(tmp_path / "subs", {"dee": "blank_template"})
    done = _cli("grade", str(subs), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the Dask scheduler" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_without_dask_the_flags_say_how_to_install_it(tmp_path):
    subs = _class(tmp_path / "subs", {"dee": "blank_template"})
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = _cli("grade", str(subs), "--out", str(tmp_path / "out"), "--cluster", "local:1", env=env)
    assert done.returncode == 2 and "pip install" in done.stdout + done.stderr and "[dask]" in done.stdout + done.stderr


def test_a_worker_of_another_grader_version_is_refused(monkeypatch):
    class FakeClient:
        def get_versions(self, check, packages):
            return {}

        def run(self, fn):
            return {"tcp://w1": cluster.grader_version(), "tcp://w2": "0.0.1+deadbeef"}

    fake = object.__new__(cluster.Cluster)
    fake.client = FakeClient()
    with pytest.raises(ClusterError, match="0.0.1\\+deadbeef"):
        fake._check_versions()


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing_and_changes_nothing(tmp_path):
    students = {f"s{i}": example for i, example in
                enumerate(["solution", "log_sigmoid", "argmax_sampler", "solution", "exp_diagonal", "blank_template"])}
    subs = _class(tmp_path / "subs", students)
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    grade_class(subs, clean, jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local:
        with distributed.Client(local) as client:
            victim = sorted(client.run(os.getpid).values())[0]
        killed = threading.Event()

        def kill_one(outcome) -> None:  # after the first result: SIGKILL a worker process (its nanny restarts it)
            if not killed.is_set():
                killed.set()
                os.kill(victim, signal.SIGKILL)

        outcomes = grade_class(subs, faulty, cluster=ClusterSpec(address=local.scheduler_address), on_done=kill_one)
    assert killed.is_set()
    assert sorted(o.student for o in outcomes) == sorted(students)
    assert _tree(faulty) == _tree(clean)


def test_the_worker_plugin_stops_dasks_profiler_and_starts_the_sandbox(monkeypatch):
    """Dask's sampling profiler takes the GIL every 10 ms on a grading thread; the plugin turns it off."""
    import asyncio

    class Callback:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    callbacks = {name: Callback() for name in ("profile", "profile-cycle", "heartbeat")}
    worker = type("Worker", (), {"periodic_callbacks": dict(callbacks)})()
    started = []
    monkeypatch.setattr(cluster, "worker_sandbox", lambda start=False: started.append(start))
    asyncio.run(cluster._plugin().setup(worker))
    assert sorted(worker.periodic_callbacks) == ["heartbeat"] and started == [True]
    assert callbacks["profile"].stopped and callbacks["profile-cycle"].stopped and not callbacks["heartbeat"].stopped


def test_a_local_cluster_is_started_quiet_and_without_the_nannys_memory_monitor(monkeypatch):
    """Dask's housekeeping (ticks, monitors, stealing) is set off for the scheduler and the workers it spawns."""
    import dask

    seen = {}

    class FakeLocalCluster:
        def __init__(self, **kwargs) -> None:
            seen["kwargs"] = kwargs
            seen["config"] = {key: dask.config.get(key) for key in cluster.QUIET}

        def close(self) -> None:
            seen["closed"] = True

    class FakeClient:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def register_plugin(self, plugin) -> None:
            pass

        def get_versions(self, check, packages):
            return {}

        def run(self, fn):
            return {"tcp://w1": cluster.grader_version()}

        def close(self) -> None:
            pass

    monkeypatch.setattr(distributed, "LocalCluster", FakeLocalCluster)
    monkeypatch.setattr(distributed, "Client", FakeClient)
    with cluster.Cluster(ClusterSpec(local_workers=2)):
        pass
    assert seen["config"] == cluster.QUIET
    assert seen["kwargs"]["memory_limit"] == 0 and seen["kwargs"]["threads_per_worker"] == 1
    assert seen["kwargs"]["n_workers"] == 2 and seen["closed"]
    assert dask.config.get("distributed.scheduler.work-stealing") is True  # Dask's default again, outside
