"""Every way a batch stops is safe: SIGKILL, Ctrl-C, SIGTERM, a dying worker, a damaged
part, a second batch on the same store, other replications, a store that cannot be
written. ``ree`` runs as a subprocess, as a user runs it; the batches are small (24-36
month runs) but long enough for a signal to land mid-computation."""

import os
import re
import signal
import struct
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest

from abm import load_scenario
from abm.batch import Experiment, load_experiment, plan_runs, run_batch
from abm.batch.executors import WorkerPool
from abm.batch.experiment import Factor
from abm.batch.runner import experiment_hash
from abm.batch.store import Store
from abm.progress import Progress
from tests.conftest import EXPERIMENTS, ROOT
from tests.test_batch_cli import REE, ree

EXPERIMENT = """
name = "stops"
scenario = "{scenario}"
replications = {replications}
seed = 11
record_every = 6
series = ["price"]
[factors]
quota_cut = [0.3, 0.6]
horizon_months = [{horizon}]
"""
RUNS = 24  # 2 quota cuts x 12 replications, no policies: every run has its own seed

# Loaded by every Python process started with this folder on PYTHONPATH (spawned workers
# too): the run with seed REE_TEST_DIE_SEED kills its process, every time or (with
# REE_TEST_DIE_ONCE, a marker file) only the first time. Test-only; nothing in abm knows.
DYING_WORKER = """
import os
if os.environ.get("REE_TEST_DIE_SEED"):
    import abm.run
    _run_model = abm.run.run_model
    def _dying_run_model(scenario, seed, **options):
        marker = os.environ.get("REE_TEST_DIE_ONCE")
        if seed == int(os.environ["REE_TEST_DIE_SEED"]) and not (marker and os.path.exists(marker)):
            if marker:
                open(marker, "w").close()
            os._exit(9)
        return _run_model(scenario, seed, **options)
    abm.run.run_model = _dying_run_model
"""


# Loaded as DYING_WORKER is: once the batch has saved a run, its next wait for runs gets a
# Ctrl-C just after it took its futures' locks and before its ``with`` block began, where a
# Ctrl-C raised in concurrent.futures leaves them taken (so CI hung twice, by chance).
INTERRUPTED_WAIT = """
import os
if os.environ.get("REE_TEST_INTERRUPT_WAIT"):
    import glob, signal
    from concurrent.futures import _base
    _enter = _base._AcquireFutures.__enter__
    def _interrupted_enter(self):
        _enter(self)
        if glob.glob(os.path.join(os.environ["REE_TEST_INTERRUPT_WAIT"], "parts", "*.metrics.parquet")):
            _base._AcquireFutures.__enter__ = _enter
            signal.raise_signal(signal.SIGINT)
    _base._AcquireFutures.__enter__ = _interrupted_enter
"""


def hooked(tmp_path: Path, hook_code: str, **variables: str) -> dict[str, str]:
    """The environment of a ``ree`` whose Python processes load ``hook_code`` first (as
    ``sitecustomize``), with ``variables`` set."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(hook_code)
    path = os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, **variables}


def write_experiment(folder: Path, replications: int = 12, horizon: int = 36) -> Path:
    path = folder / "stops.toml"
    path.write_text(EXPERIMENT.format(scenario=(EXPERIMENTS / "quota_shock.toml").as_posix(),
                                      replications=replications, horizon=horizon))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """The experiment file and its uninterrupted store (computed in this process)."""
    folder = tmp_path_factory.mktemp("reference")
    path = write_experiment(folder)
    run_batch(load_experiment(path), folder / "whole", executor="serial", progress=False)
    return path, folder / "whole"


def start(experiment: Path, out: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """``ree batch`` in its own process group, as a terminal would start it."""
    return subprocess.Popen([REE, "batch", str(experiment), "--out", str(out), "--quiet", "--no-report", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env)


def finished(out: Path) -> int:
    return len(list((out / "parts").glob("*.metrics.parquet")))


def wait_for_parts(out: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while finished(out) < count:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no runs finished"
        time.sleep(0.02)


def live_processes(group: int) -> list[int]:
    """Processes of ``group`` still running (zombies waiting for a parent that is gone do not count)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            alive.append(int(stat.parent.name))
    return alive


def no_live_processes(group: int) -> bool:
    deadline = time.time() + 2
    while live_processes(group) and time.time() < deadline:
        time.sleep(0.05)
    return not live_processes(group)


def metrics(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "metrics.parquet").drop(columns=["seconds"]).sort_values("run_id", ignore_index=True)


def series(folder: Path) -> pd.DataFrame:
    table = pd.read_parquet(folder / "series.parquet")
    return table.sort_values(["run_id", "step", "variable", "element", "region"], ignore_index=True)


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "processes"])
def test_a_batch_killed_mid_computation_resumes_to_the_uninterrupted_result(reference, tmp_path, executor):
    experiment, whole = reference
    killed = tmp_path / "killed"
    process = start(experiment, killed, "--executor", executor, "--workers", "2")
    wait_for_parts(killed, 3, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 3 <= finished(killed) < RUNS, "the kill must land mid-computation"
    for part in (killed / "parts").glob("*.parquet"):  # whatever is visible as a part is whole
        pd.read_parquet(part)

    resumed = ree("batch", str(experiment), "--out", str(killed), "--workers", "2", "--resume", "--quiet", "--no-report")
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(metrics(killed), metrics(whole), check_exact=True)
    pd.testing.assert_frame_equal(series(killed), series(whole), check_exact=True)
    assert not list(killed.rglob(".*.tmp"))  # a resume clears what the kill cut off
    assert not (killed / "report.md").exists()  # --no-report: the runs only


@pytest.mark.slow
@pytest.mark.parametrize("executor,stop,status", [
    ("serial", signal.SIGINT, 130), ("processes", signal.SIGINT, 130), ("processes", signal.SIGTERM, 143),
])
def test_ctrl_c_and_sigterm_stop_a_batch_at_once_and_say_what_is_saved(reference, tmp_path, executor, stop, status):
    experiment, whole = reference
    out = tmp_path / "stopped"
    process = start(experiment, out, "--executor", executor, "--workers", "2")
    wait_for_parts(out, 2, process)
    sent = time.time()
    os.killpg(process.pid, stop)  # a terminal's Ctrl-C reaches the whole process group
    _, stderr = process.communicate(timeout=30)
    assert time.time() - sent < 2, "the batch must stop within 2 s"
    assert process.returncode == status, stderr
    saved = re.fullmatch(rf"ree: interrupted: (\d+) of {RUNS} runs saved in {re.escape(str(out))}; rerun .*--resume.*",
                         one_line(stderr))
    assert saved and 2 <= int(saved.group(1)) == finished(out) < RUNS
    assert no_live_processes(process.pid), "no worker outlives the batch"

    store = run_batch(load_experiment(experiment), out, executor="serial", progress=False)  # a rerun finishes
    assert store.manifest()["runs_this_session"] == RUNS - int(saved.group(1))
    pd.testing.assert_frame_equal(metrics(out), metrics(whole), check_exact=True)


@pytest.mark.slow
def test_a_ctrl_c_landing_inside_the_wait_for_runs_still_ends_the_command(tmp_path):
    """The Ctrl-C is held while the engine waits, and raised once the wait let go of its locks."""
    experiment = write_experiment(tmp_path, replications=3, horizon=24)
    out = tmp_path / "stopped"
    process = start(experiment, out, "--executor", "processes", "--workers", "2",
                    env=hooked(tmp_path, INTERRUPTED_WAIT, REE_TEST_INTERRUPT_WAIT=str(out)))
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # a regression hangs: end it
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert re.fullmatch(r"ree: interrupted: [1-5] of 6 runs saved in .*", one_line(stderr))
    assert no_live_processes(process.pid)


def _send_part_of_a_result(marker: str) -> None:
    """In a pool worker: write the start of a result message to the worker's result pipe
    (a length header promising 1 MB, then four bytes), as a worker ended mid-send leaves
    it, say so in ``marker`` and wait to be ended."""
    result_queue = sys._getframe(1).f_locals["result_queue"]  # concurrent.futures' _process_worker
    os.write(result_queue._writer.fileno(), struct.pack("!i", 1_000_000) + b"part")
    Path(marker).touch()
    time.sleep(600)


def test_workers_stopped_mid_result_leave_no_thread_waiting_for_the_rest(tmp_path):
    """Ctrl-C while a worker sends its result: the command must still end (CI once hung)."""
    pool = WorkerPool(1)
    marker = tmp_path / "sent"
    pool.submit(_send_part_of_a_result, str(marker))
    deadline = time.time() + 60
    while not marker.exists():
        assert time.time() < deadline, "the worker never ran"
        time.sleep(0.05)
    manager = pool._pool._executor_manager_thread
    pool.stop()
    manager.join(10)
    assert not manager.is_alive()


@pytest.mark.slow
@pytest.mark.parametrize("dies", ["once", "always"])
def test_a_dead_worker_costs_its_runs_one_retry_then_a_failed_record(tmp_path, dies):
    experiment = write_experiment(tmp_path, replications=3, horizon=24)
    victim = plan_runs(load_experiment(experiment))[2]
    env = hooked(tmp_path, DYING_WORKER, REE_TEST_DIE_SEED=str(victim.seed))
    if dies == "once":
        env["REE_TEST_DIE_ONCE"] = str(tmp_path / "died")
    out = tmp_path / "out"
    done = ree("batch", str(experiment), "--out", str(out), "--workers", "2", "--quiet", "--no-report", env=env)
    assert "Traceback" not in done.stderr
    table = pd.read_parquet(out / "metrics.parquet")
    assert len(table) == 6 and table["run_id"].is_unique
    if dies == "once":
        assert (tmp_path / "died").exists() and done.returncode == 0, done.stderr
        assert (table["status"] == "ok").all()
    else:
        assert done.returncode == 1 and one_line(done.stderr).startswith("ree: 1 run(s) failed")
        failed = table[table["status"] != "ok"]
        assert failed["run_id"].tolist() == [victim.run_id] and "BrokenProcessPool" in failed["error"].item()


@pytest.fixture
def small_store(tmp_path) -> tuple[Path, Path]:
    """A finished store of 4 runs of 24 months, and its experiment file."""
    experiment = write_experiment(tmp_path, replications=2, horizon=24)
    out = tmp_path / "store"
    run_batch(load_experiment(experiment), out, executor="serial", progress=False)
    return experiment, out


def test_a_damaged_part_is_quarantined_and_its_run_made_again(small_store):
    experiment, out = small_store
    before = metrics(out)
    first, second = sorted(Store(out).finished())[:2]
    cut = out / "parts" / f"{first}.metrics.parquet"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])  # a disk that lost the tail
    (out / "parts" / f"{second}.series.parquet").write_bytes(b"PAR1")
    left_over = [out / ".metrics.parquet.x1.tmp", out / "figures" / ".report.png.x2.tmp", out / "parts" / ".a.x3.tmp"]
    (out / "figures").mkdir()
    for temporary in left_over:  # what kills during consolidation, the report or a part leave
        temporary.write_bytes(b"cut off")
    done = ree("batch", str(experiment), "--out", str(out), "--executor", "serial", "--quiet", "--no-report")
    assert done.returncode == 0, done.stderr
    notes = done.stderr.strip().splitlines()
    assert len(notes) == 2 and all("damaged part moved to" in note for note in notes) and "Traceback" not in done.stderr
    assert sorted(p.name.split(".")[0] for p in (out / "parts" / "quarantine").iterdir()) == sorted([first, second] * 2)
    pd.testing.assert_frame_equal(metrics(out), before, check_exact=True)
    assert len(series(out).groupby("run_id")) == 4
    assert Store(out).manifest()["runs_this_session"] == 2
    assert not any(temporary.exists() for temporary in left_over)


def test_consolidation_quarantines_a_part_it_cannot_read(small_store):
    _, out = small_store
    store = Store(out)
    run = sorted(store.finished())[0]
    part = out / "parts" / f"{run}.metrics.parquet"
    data = bytearray(part.read_bytes())
    data[4:len(data) // 2] = bytes(len(data) // 2 - 4)  # the footer is whole, the pages are not
    part.write_bytes(bytes(data))
    assert store.consolidate() == [part]
    assert run not in store.finished() and (out / "parts" / "quarantine").is_dir()
    assert len(pd.read_parquet(out / "metrics.parquet")) == 3 and run not in set(series(out)["run_id"])


@pytest.mark.slow
def test_a_second_batch_on_a_busy_store_is_refused_and_runs_nothing(reference, tmp_path):
    experiment, _ = reference
    out = tmp_path / "busy"
    first = start(experiment, out, "--workers", "2")
    wait_for_parts(out, 1, first)
    second = ree("batch", str(experiment), "--out", str(out), "--executor", "serial", "--quiet", "--no-report")
    assert second.returncode == 2 and "no other batch" in one_line(second.stderr) and second.stdout == ""
    assert first.wait(timeout=300) == 0, first.communicate()
    assert len((out / "status.log").read_text().splitlines()) == RUNS  # every run made once


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_other_replications_are_refused_unless_forced_and_then_the_tables_hold_the_plan(small_store):
    experiment, out = small_store
    before = _snapshot(out)
    refused = ree("batch", str(experiment), "--out", str(out), "--replications", "1", "--quiet", "--no-report")
    line = one_line(refused.stderr)
    assert refused.returncode == 2 and "replications" in line and "--out" in line and "--force" in line
    assert _snapshot(out) == before  # nothing written

    forced = ree("batch", str(experiment), "--out", str(out), "--replications", "1", "--force", "--executor", "serial", "--quiet")
    assert forced.returncode == 0, forced.stderr
    table = metrics(out)
    assert len(table) == 2 and set(table["replication"]) == {0}
    manifest = Store(out).manifest()
    assert manifest["replications"] == 1 and manifest["runs"] == 2 and manifest["runs_this_session"] == 0
    assert finished(out) == 4  # the other runs stay on disk, out of the tables
    assert set(series(out)["run_id"]) == set(table["run_id"])
    assert pd.read_csv(out / "summary.csv")["runs"].sum() == 2


def test_an_experiment_built_in_python_runs_resumes_and_is_hashed_by_content(tmp_path):
    def built(seed: int = 3) -> Experiment:
        return Experiment(
            name="in_python", source=Path("<built in Python>"), scenario=load_scenario(EXPERIMENTS / "quota_shock.toml"),
            scenario_path=EXPERIMENTS / "quota_shock.toml", replications=2, seed=seed, record_every=6,
            factors=(Factor("quota_cut", levels=(0.2, 0.5)), Factor("horizon_months", levels=(24,))),
            series_variables=("price",),
        )

    out = tmp_path / "python"
    store = run_batch(built(), out, executor="serial", progress=False)
    assert len(metrics(out)) == 4 and store.manifest()["runs_this_session"] == 4
    assert run_batch(built(), out, executor="serial", progress=False).manifest()["runs_this_session"] == 0
    assert experiment_hash(built()) == experiment_hash(built()) != experiment_hash(built(seed=4))
    path = write_experiment(tmp_path)  # a comment changes a file's bytes, not the experiment
    commented = tmp_path / "commented.toml"
    commented.write_text("# the same experiment\n" + path.read_text())
    assert experiment_hash(load_experiment(path)) == experiment_hash(load_experiment(commented))


def test_progress_off_a_terminal_is_a_line_every_tenth(tmp_path):
    experiment = write_experiment(tmp_path, replications=6, horizon=24)
    done = subprocess.run([REE, "batch", str(experiment), "--out", str(tmp_path / "out"), "--executor", "serial", "--no-report"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("ree batch: ")]
    assert len(lines) == 10 and "\r" not in done.stderr, done.stderr
    assert re.fullmatch(r"ree batch: 12/12 runs \(100 %\), [\d.]+ runs/s, ETA 0s", lines[-1])


def test_progress_counts_from_the_runs_already_done():
    stream = StringIO()
    with Progress("ree batch", total=330, initial=99, stream=stream) as bar:
        for _ in range(231):
            bar.update(failed=_ == 0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 7 and lines[0].startswith("ree batch: 132/330 runs (40 %)") and lines[-1].endswith("1 failed")
    quiet = StringIO()
    with Progress("ree batch", total=10, stream=quiet, enabled=False) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""


def test_ree_report_works_on_a_store_without_series(small_store):
    _, out = small_store
    (out / "series.parquet").unlink()
    done = ree("report", str(out))
    assert done.returncode == 0, done.stderr
    assert "series.parquet" in one_line(done.stderr) and (out / "report.md").exists()
    assert not list((out / "figures").glob("price_fan_*"))


def test_an_out_that_is_a_file_or_a_damaged_manifest_is_one_line_and_exit_2(small_store, tmp_path):
    experiment, out = small_store
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("mine")
    done = ree("batch", str(experiment), "--out", str(not_a_folder), "--quiet")
    assert done.returncode == 2 and "--out" in one_line(done.stderr) and not_a_folder.read_text() == "mine"
    (out / "manifest.json").write_text('{"experiment": "cut off by a kill')
    before = _snapshot(out)
    for command in (["batch", str(experiment), "--out", str(out), "--quiet"], ["report", str(out)]):
        done = ree(*command)
        assert done.returncode == 2 and "manifest" in one_line(done.stderr), command
    assert _snapshot(out) == before


@pytest.fixture
def mount(tmp_path):
    """Mount a small tmpfs (root only): ``mount(size, read_only)`` returns its folder."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = []

    def _mount(size: str) -> Path:
        folder = tmp_path / f"mount{len(mounted)}"
        folder.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(folder)
        return folder

    yield _mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_or_a_read_only_store_is_one_line_and_exit_2(small_store, mount):
    experiment, out = small_store
    full = mount("200k")  # room for the manifest and a run or two
    done = ree("batch", str(experiment), "--out", str(full / "store"), "--executor", "serial", "--quiet")
    line = one_line(done.stderr)
    assert done.returncode == 2 and "No space left on device" in line
    assert not list(full.rglob(".*.tmp"))
    for part in (full / "store" / "parts").glob("*.parquet"):
        pd.read_parquet(part)

    read_only = mount("1m")
    subprocess.run(["cp", "-a", str(out), str(read_only / "store")], check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
    for store in (read_only / "store", read_only / "new"):
        done = ree("batch", str(experiment), "--out", str(store), "--executor", "serial", "--quiet")
        assert done.returncode == 2 and "writable" in one_line(done.stderr), store
