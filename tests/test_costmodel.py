"""Issue 31: the ring all-reduce model behind `govtrain plan` and benchmarks/scaling.py --fit."""
from __future__ import annotations

import re

import pytest

from govtrain.components.train.costmodel import Link, StepModel, allreduce_seconds, buckets, fit_link, plan_rows

LINK = Link("test", 1e-4, 1e9, "stated")


def test_the_ring_pays_a_latency_per_bucket_and_ring_step_and_two_n_minus_one_over_n_of_the_bytes():
    assert allreduce_seconds(10**6, 1, LINK) == 0.0
    assert allreduce_seconds(10**6, 2, LINK, bucket_count=3) == pytest.approx(3 * 2 * 1e-4 + 1 * 1e6 / 1e9)
    assert allreduce_seconds(10**6, 4, LINK) == pytest.approx(6 * 1e-4 + 1.5 * 1e6 / 1e9)
    assert buckets(499 * 1024, 25.0) == 1 and buckets(499 * 1024, 0.05) == 10


def test_a_fitted_link_recovers_the_latency_and_bandwidth_that_made_the_points():
    truth = Link("truth", 8e-5, 2.5e9, "made")
    points = [{"workers": n, "gradient_bytes": b, "buckets": k,
               "comm_seconds_per_step": allreduce_seconds(b, n, truth, k)}
              for n, b, k in ((2, 511_000, 1), (2, 511_000, 10), (2, 255_500, 1), (4, 511_000, 5))]
    fitted = fit_link(points)
    assert fitted.latency_s == pytest.approx(8e-5) and fitted.bytes_per_s == pytest.approx(2.5e9)
    with pytest.raises(ValueError, match="do not fit a latency and a bandwidth"):
        fit_link([{**p, "comm_seconds_per_step": -p["comm_seconds_per_step"]} for p in points])


def test_accumulating_gradients_raises_the_predicted_efficiency_and_more_workers_lower_it():
    step = StepModel(compute_s_per_sample=15e-6, gradient_bytes=511_000, batch_per_worker=1024)
    one, four = step.efficiency(2, LINK), StepModel(15e-6, 511_000, 1024, grad_accumulation=4).efficiency(2, LINK)
    assert 0 < one < four < 1 and step.efficiency(8, LINK) < one
    rows = plan_rows({1: step, 2: step, 4: step}, 800_000, LINK, price_per_worker_hour=1.0)
    assert [r["workers"] for r in rows] == [1, 2, 4] and rows[0]["efficiency"] == pytest.approx(1.0)
    assert rows[2]["epoch_cost"] == pytest.approx(4 * rows[2]["epoch_seconds"] / 3600)


def test_govtrain_plan_prints_a_table_for_the_configs_own_network(small_data, write_config, tmp_path):
    from tests.test_cli import govtrain

    write_config(small_data.data, training={"price_per_worker_hour": 2.0})
    out = govtrain("plan", "--config", tmp_path / "config.yaml", "--workers", "1", "--workers", "2",
                   "--link", "25gbe")
    assert out.returncode == 0, out.stderr
    assert "25 GbE between hosts, 30 us a message, 3.12 GB/s (stated" in out.stdout
    rows = re.findall(r"│\s+(\d)\s+│\s+(\d+)\s+│\s+([\d,]+)\s+│\s+([\d.]+)\s+│", out.stdout)
    assert [r[0] for r in rows] == ["1", "2"] and rows[0][3] == "1.00" and 0 < float(rows[1][3]) <= 1.2
    bad = govtrain("plan", "--config", tmp_path / "config.yaml", "--link", "carrier-pigeon")
    assert bad.returncode == 2
    assert "--link 'carrier-pigeon': choose one of loopback, 25gbe, 100gbe, nvlink" in bad.stderr


def test_the_train_record_sets_predicted_beside_measured():
    from govtrain.components.train.costmodel import predicted_against_measured

    epoch = {"world_size": 2, "seconds": 10.0, "comm_steps": 1000, "comm_exposed_seconds": 1.0,
             "comm_bytes_per_step": 511_000.0, "comm_buckets_per_step": 1.0}
    found = predicted_against_measured(epoch, LINK)
    assert found["exposed_seconds_per_step"] == {"measured": 0.001, "predicted": round(2e-4 + 511_000 / 1e9, 6)}
    assert found["efficiency"]["measured"] == 0.9  # 9 ms of compute, 1 ms exposed
    assert found["efficiency"]["predicted"] == round(0.009 / (0.009 + 2e-4 + 511e-6), 4)
    assert predicted_against_measured({"world_size": 1, "seconds": 1.0}, LINK) is None


def test_a_shared_host_is_fitted_as_contention_and_a_per_step_wait_and_predicts_a_run_it_did_not_see():
    from govtrain.components.train.costmodel import fit_host

    def step(compute: float) -> float:  # 2 workers on one host: 14% slower compute and 4.7 ms a step
        return compute * 1.14 + 4.7e-3

    points = [{"workers": 2, "compute_seconds_per_step": c, "step_seconds": step(c)} for c in (0.0135, 0.0536)]
    host = fit_host(points, "host", "made")
    assert host.contention == pytest.approx(0.14) and 2 * host.latency_s == pytest.approx(4.7e-3)
    unseen = StepModel(0.0135 / 1024, 511_000, 1024, grad_accumulation=2, bucket_cap_mb=0.05)
    assert unseen.efficiency(2, host) == pytest.approx(0.027 / step(0.027))  # bucket count does not enter
    with pytest.raises(ValueError, match="vary the compute per step"):
        fit_host([{**p, "step_seconds": p["compute_seconds_per_step"] * 0.5} for p in points], "h", "m")


def test_auto_accumulation_only_where_workers_each_hold_a_large_shard():
    from govtrain.components.train.step import grad_accumulation
    from govtrain.core.config import TrainingSpec

    auto = TrainingSpec()
    assert auto.grad_accumulation == "auto" and auto.workers == 2
    assert grad_accumulation(auto, 800_000) == 4  # the 1M demo: 400k train rows a worker
    assert grad_accumulation(auto, 199_999) == 1  # 99,999 a worker: every optimizer step kept
    assert grad_accumulation(auto.model_copy(update={"workers": 1}), 800_000) == 1  # nothing to all-reduce
    assert grad_accumulation(TrainingSpec(grad_accumulation=2), 100) == 2  # a person's number stands


def test_auto_epochs_and_lr_follow_the_optimizer_steps_and_the_batch_a_worker_takes():
    import math

    from pydantic import ValidationError

    from govtrain.components.train.step import epochs_and_lr
    from govtrain.core.config import TrainingSpec

    auto = TrainingSpec()
    assert (auto.epochs, auto.lr, auto.early_stopping_patience) == ("auto", "auto", 10)
    # wages1's 2,306 train rows: 1,153 a worker in 17 batches of 72 rows (the last short), so 59 epochs for 1,003
    # steps, at 1e-2 x sqrt(72 / 1,024) = 2.7e-3, raised to the floor of 3e-3
    assert epochs_and_lr(auto, 2306, 1) == (59, 3e-3)
    epochs, lr = epochs_and_lr(auto, 16_000, 1)  # 8,000 a worker: batches of 500 rows, 16 steps an epoch
    assert epochs == 60 and lr == pytest.approx(1e-2 * math.sqrt(500 / 1024), abs=1e-8)
    # the 1M demo's 800k train rows: 400k a worker, 391 batches of 1,024, 4 accumulated: 98 steps, 11 epochs
    assert epochs_and_lr(auto, 800_000, 4) == (11, 1e-2)
    assert epochs_and_lr(auto, 8_000_000, 4) == (8, 1e-2)  # 977 steps an epoch: the least, 8 epochs
    assert epochs_and_lr(auto.model_copy(update={"workers": 1}), 20_000, 1)[0] == 50  # 20 steps an epoch
    assert epochs_and_lr(auto, 200, 1)[0] == 60  # 100 rows a worker: 7 batches of 16 rows, the most epochs
    assert epochs_and_lr(TrainingSpec(epochs=3, lr=0.5), 2306, 1) == (3, 0.5)  # a person's numbers stand
    for bad in ({"epochs": "many"}, {"epochs": 0}, {"lr": 0}, {"lr": "fast"}):
        with pytest.raises(ValidationError):
            TrainingSpec(**bad)
