"""Running the pipeline locally through kfp.local, and compiling it for a cluster."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from govtrain.components.prepare import check_columns
from govtrain.core.config import Config
from govtrain.core.state import mark_latest, run_stamp
from govtrain.pipelines.failure import ANSI, TASK_DONE, step_error
from govtrain.pipelines.interrupt import Interrupted, interruptible, stop_descendants
from govtrain.registry.runs import end_pipeline_run

TASK_START = re.compile(r"Executing task '([\w-]+)'")


class PipelineFailed(RuntimeError):
    """A step crashed (not a failed gate); the message is the step's own one-line error."""


@dataclass
class LocalRun:
    run_id: str
    run_dir: Path
    log_path: Path
    ledger: dict[str, Any]
    registration: dict[str, Any] | None
    seconds: float

    @property
    def registered(self) -> bool:
        return self.registration is not None


def preflight(config: Config) -> None:
    """The cheap checks that would otherwise surface as a crash deep inside a step."""
    from govtrain.components.validate import load_suite

    check_columns(config)
    if config.validation.suite is not None:
        load_suite(config.validation.suite)


@contextmanager
def output_to(log_path: Path) -> Iterator[TextIO]:
    """Send this process's and its children's stdout/stderr to a file; yield a stream to the terminal."""
    sys.stdout.flush(), sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    with open(log_path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        terminal = os.fdopen(os.dup(saved_out), "w", buffering=1)
        # Python-level streams too: a host that replaced sys.stdout (pytest, notebooks) would otherwise
        # keep kfp.local's task logs, and the step errors we read back, away from the log file.
        saved_streams = sys.stdout, sys.stderr
        sys.stdout = os.fdopen(os.dup(1), "w", buffering=1)
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
        try:
            yield terminal
        finally:
            terminal.close()
            sys.stdout.close()
            sys.stderr.close()
            sys.stdout, sys.stderr = saved_streams
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)


EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+) loss ([\d.]+) (\w+) ([-\d.]+)")
PART_LINE = re.compile(r"evaluate: (\w+) done in ([\d.]+) s")


class Progress:
    """What the pipeline's log says, as plain lines for the terminal (or a pipe: no control codes): each step
    when it starts and ends, each training epoch with its loss, its validation metric and the time left at
    the pace so far, and each part of the evaluation."""

    def __init__(self, terminal: TextIO) -> None:
        self.terminal = terminal
        self.first_epoch: tuple[float, int] | None = None  # when the first epoch line came, and its epoch

    def say(self, text: str) -> None:
        self.terminal.write(f"  {datetime.now().strftime('%H:%M:%S')}  {text}\n")

    def read(self, line: str) -> None:
        line = ANSI.sub("", line)
        if match := TASK_START.search(line):
            self.say(f"{match.group(1):<14} started")
        elif match := TASK_DONE.search(line):
            self.say(f"{match.group(1):<14} {match.group(2).lower()}")
        elif match := EPOCH_LINE.search(line):
            done, total = int(match.group(1)), int(match.group(2))
            left = ""
            if done == 1 or self.first_epoch is None:  # the pace is timed from epoch 1: start-up is not an epoch
                self.first_epoch = (time.monotonic(), done)
            elif done < total:
                pace = (time.monotonic() - self.first_epoch[0]) / (done - self.first_epoch[1])
                left = f", about {pace * (total - done):.0f} s left"
            self.say(f"  train epoch {done}/{total}: loss {match.group(3)}, {match.group(4)} {match.group(5)}{left}")
        elif match := PART_LINE.search(line):
            self.say(f"  evaluate {match.group(1)} ({match.group(2)} s)")


def follow(log_path: Path, terminal: TextIO | None, stop: threading.Event) -> None:
    """Show the pipeline's progress on the terminal as the pipeline writes its log (Progress)."""
    progress = Progress(terminal) if terminal is not None else None
    with open(log_path, errors="replace") as handle:
        while True:
            line = handle.readline()
            if line:
                if progress is not None:
                    progress.read(line)
            elif stop.is_set():
                return
            else:
                time.sleep(0.2)


def seal_errored(pipeline_root: Path, state: Path, run_id: str, log_path: Path, message: str) -> Path:
    """A crashed step still leaves a sealed ledger: what finished, plus an error record (MANAGE 4.3)."""
    from govtrain.components.seal import seal_errored_run

    evidence = sorted(pipeline_root.glob("*/*/evidence"))
    failed = [m.group(1) for m in TASK_DONE.finditer(ANSI.sub("", log_path.read_text(errors="replace")))
              if m.group(2).upper() == "FAILURE"]
    run_dir = state / "runs" / run_id
    seal_errored_run(evidence, pipeline_root / "error-evidence", run_dir, run_id,
                     failed[0].removesuffix("-op").replace("-", "_") if failed else "unknown", message)
    return close_folder(run_dir, log_path)


def running_step(log_path: Path) -> str:
    """The step kfp.local had started and not finished, as the evidence names steps (train-op -> train)."""
    text = ANSI.sub("", log_path.read_text(errors="replace"))
    done = {m.group(1) for m in TASK_DONE.finditer(text)}
    running = [name for name in TASK_START.findall(text) if name not in done]
    return running[-1].removesuffix("-op").replace("-", "_") if running else "before the first step"


def seal_interrupted(config: Config, signum: int, pipeline_root: Path, state: Path, run_id: str,
                     log_path: Path) -> Interrupted:
    """Stop every child, seal what finished plus an `interrupted` record, end the MLflow run KILLED."""
    from govtrain.components.seal import seal_interrupted_run

    killed = stop_descendants(signum)
    step, run_dir, name = running_step(log_path), state / "runs" / run_id, signal.Signals(signum).name
    seal_interrupted_run(sorted(pipeline_root.glob("*/*/evidence")), pipeline_root / "interrupt-evidence",
                         run_dir, run_id, step, name, killed)
    close_folder(run_dir, log_path)
    note_sealed(config.chain_dir, run_dir, config)
    end_pipeline_run(config.tracking_uri, config.registry.experiment, run_id, "KILLED",
                     f"interrupted by {name} during {step}")
    return Interrupted(signum, step, run_dir)


def close_folder(run_dir: Path, log_path: Path | None) -> Path:
    """The last files of a sealed run folder: a copy of the pipeline log, then unsealed.json, which lists it
    and registration.json (made after the ledger was sealed) by sha256 and is signed: every file in the
    folder is then in the ledger or in that list, and `audit verify` checks both (governance/unsealed.py).
    Written last and durably: a crash before it leaves a folder whose verify names the unlisted file."""
    from govtrain.governance.ledger import list_unsealed

    if log_path is not None:
        shutil.copyfile(log_path, run_dir / "pipeline.log")
    list_unsealed(run_dir)
    return run_dir


def note_sealed(chain_dir: Path, run_dir: Path, config: Config | None = None) -> Path:
    """Every sealed run goes into the chain of runs (governance/sealed_runs.py): a deleted folder shows. With
    a config, the chain's newest record is also anchored as a tag of the MLflow experiment."""
    from govtrain.governance.chain import anchor_of
    from govtrain.governance.sealed_runs import record_run
    from govtrain.registry.runs import anchor_runs

    record = record_run(chain_dir, run_dir, json.loads((run_dir / "ledger.json").read_bytes()))
    if config is not None:
        anchor_runs(config.tracking_uri, config.registry.experiment, anchor_of(record))
    return run_dir


def seal_rejected(state: Path, stage: str, message: str, chain_dir: Path | None = None) -> Path:
    """A run refused before any step ran (bad config, missing column, unreadable file) still leaves a
    sealed ledger whose one record says why (MANAGE 4.3)."""
    import tempfile

    from govtrain.components.seal import seal_errored_run

    run_id = f"local-{run_stamp()}"
    run_dir = state / "runs" / run_id
    with tempfile.TemporaryDirectory() as work:
        seal_errored_run([], Path(work), run_dir, run_id, stage, message)
    return note_sealed(chain_dir or state / "chains", close_folder(run_dir, None))


def find_bundle(pipeline_root: Path) -> Path | None:
    found = sorted(pipeline_root.glob("*/*/bundle/ledger.json"))
    return found[0].parent if found else None


def run_local(config: Config, state: Path, show_progress: bool = True) -> LocalRun:
    """Execute the training pipeline with kfp.local's SubprocessRunner in this interpreter."""
    from kfp import local

    from govtrain.pipelines.training import training_pipeline

    try:
        preflight(config)
    except ValueError as exc:
        run_dir = seal_rejected(state, "preflight", str(exc), config.chain_dir)
        raise type(exc)(f"{exc} (sealed evidence: {run_dir})") from exc
    stamp = run_stamp()
    pipeline_root = state / "kfp" / stamp
    log_path = state / "logs" / f"{stamp}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.touch()
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)

    stop = threading.Event()
    started = time.perf_counter()
    failure: Exception | None = None
    with output_to(log_path) as terminal, interruptible():
        watcher = threading.Thread(target=follow, args=(log_path, terminal if show_progress else None, stop),
                                   daemon=True)
        watcher.start()
        try:
            training_pipeline(config_json=config.to_json(), run_id=f"local-{stamp}")
        except Exception as exc:  # the step's own message is in the log
            failure = exc
        except KeyboardInterrupt as exc:  # SIGINT or SIGTERM (interrupt.py): stopped, sealed, KILLED
            stop.set()
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            raise seal_interrupted(config, signum, pipeline_root, state, f"local-{stamp}", log_path) from None
        stop.set()
        watcher.join(timeout=5)
    seconds = time.perf_counter() - started
    if failure is not None:
        message = step_error(log_path)
        run_dir = note_sealed(config.chain_dir, seal_errored(pipeline_root, state, f"local-{stamp}", log_path, message),
                              config)
        end_pipeline_run(config.tracking_uri, config.registry.experiment, f"local-{stamp}", "FAILED",
                         f"error: {message}")
        raise PipelineFailed(f"{message} (log: {log_path}; sealed evidence: {run_dir})") from failure

    bundle = find_bundle(pipeline_root)
    if bundle is None:
        raise PipelineFailed(f"the pipeline finished without sealing a ledger (log: {log_path})")
    ledger = json.loads((bundle / "ledger.json").read_bytes())
    run_dir = state / "runs" / ledger["run_id"]
    shutil.copytree(bundle, run_dir, dirs_exist_ok=True)
    for split in ("train", "val", "test"):  # named by digest in the ledger; kept so verify can check them
        source = pipeline_root.glob(f"*/prepare*/{split}")
        for path in source:
            (run_dir / "data").mkdir(exist_ok=True)
            shutil.copyfile(path, run_dir / "data" / f"{split}.parquet")
    close_folder(run_dir, log_path)
    note_sealed(config.chain_dir, run_dir, config)
    mark_latest(state, ledger["run_id"])
    registration_file = run_dir / "registration.json"
    registration = json.loads(registration_file.read_text()) if registration_file.is_file() else None
    return LocalRun(ledger["run_id"], run_dir, log_path, ledger, registration, seconds)


def compile_pipeline(out: Path, config: Config | None = None, pipeline: str = "training") -> Path:
    """Write the KFP IR YAML of the training, drift or monitor pipeline; with a config, it becomes the default
    of the config_json parameter and the cluster settings apply."""
    from kfp import compiler

    from govtrain.monitoring.pipeline import build_drift_pipeline, build_monitor_pipeline
    from govtrain.pipelines.training import build_training_pipeline

    builders = {"training": build_training_pipeline, "drift": build_drift_pipeline, "monitor": build_monitor_pipeline}
    if pipeline not in builders:
        raise ValueError(f"--pipeline {pipeline!r}: choose one of {', '.join(builders)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {"config_json": config.to_json()} if config else None
    compiler.Compiler().compile(builders[pipeline](config), package_path=str(out), pipeline_parameters=params)
    return out
