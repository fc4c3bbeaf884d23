"""Communication measured inside DDP (components/train/comm.py) on two real gloo workers: the bytes all-reduced
per step are the gradients' size (halved by fp16 compression), the exposed share and the overlap are shares,
and gradient accumulation all-reduces once per optimizer step. Issue 31, items 1 and 2."""
import json

import pytest
from safetensors.torch import load_file

from govtrain.components.prepare import prepare
from govtrain.components.train.step import train

pytestmark = pytest.mark.slow  # DDP workers


@pytest.fixture(scope="module")
def prepared(small_data, tmp_path_factory):
    from conftest import base_config

    from govtrain.core.config import Config, resolve

    folder = tmp_path_factory.mktemp("comm")
    config = resolve(Config.model_validate(base_config(small_data.data)), folder)
    paths = {s: folder / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, folder / "ev-prepare", "comm")
    return config, paths, folder


def trained(prepared, tmp_path, **training):
    config, paths, folder = prepared
    config = config.model_copy(deep=True)
    config.training.epochs, config.training.early_stopping_patience = 2, None
    for key, value in training.items():
        if key == "ddp":
            config.training.ddp = config.training.ddp.model_copy(update=value)
        else:
            setattr(config.training, key, value)
    record = train(config, paths, folder / "ev-prepare", tmp_path / "model", tmp_path / "ev", "comm")
    weights = load_file(str(tmp_path / "model" / "model.safetensors"))
    parameters = sum(t.numel() for k, t in weights.items() if "running" not in k and "num_batches" not in k)
    return record, parameters


def test_each_epoch_states_what_communication_cost(prepared, tmp_path):
    record, parameters = trained(prepared, tmp_path)
    history = record["details"]["history"]
    assert [h["world_size"] for h in history] == [2, 2]
    for epoch in history:
        assert epoch["comm_bytes_per_step"] == 4 * parameters  # fp32 gradients, every parameter, once a step
        assert epoch["comm_buckets_per_step"] >= 1
        assert 0 < epoch["comm_share"] < 1 and 0 <= epoch["comm_overlap"] <= 1
        assert epoch["comm_exposed_seconds"] > 0 and epoch["comm_busy_seconds"] > 0
    assert record["metrics"]["comm_share"] == history[-1]["comm_share"]
    communication = dict(record["details"]["communication"])
    model = communication.pop("model")
    assert communication.pop("grad_accumulation_setting") == "auto"  # resolved to 1: 2 workers, a small table
    assert communication == {"bucket_cap_mb": 25.0, "comm_hook": "none", "static_graph": False,
                             "grad_accumulation": 1, "measured": "rank 0, per epoch"}
    # Issue 31: the ring model's prediction beside the measurement, from the last epoch's own bytes and buckets.
    last = history[-1]
    assert model["exposed_seconds_per_step"]["measured"] == round(
        last["comm_exposed_seconds"] / last["comm_steps"], 6)
    assert model["exposed_seconds_per_step"]["predicted"] > 0 and 0 < model["efficiency"]["predicted"] <= 1
    assert model["link"] == "gloo over loopback, one host"


def test_fp16_compression_halves_the_bytes_and_accumulation_all_reduces_once_a_step(prepared, tmp_path):
    plain, parameters = trained(prepared, tmp_path / "plain")
    fp16, _ = trained(prepared, tmp_path / "fp16", ddp={"comm_hook": "fp16"})
    assert fp16["details"]["history"][0]["comm_bytes_per_step"] == 2 * parameters
    accumulated, _ = trained(prepared, tmp_path / "acc", grad_accumulation=4)
    schedule = accumulated["details"]["schedule"]
    plain_steps = plain["details"]["schedule"]["steps_per_epoch"]
    assert schedule["steps_per_epoch"] == -(-plain_steps // 4)  # optimizer steps: a quarter, rounded up
    busy = [h["comm_busy_seconds"] for h in accumulated["details"]["history"]]
    assert all(b > 0 for b in busy)
    log = (tmp_path / "acc" / "ev" / "files" / "train" / "train.log").read_text()
    assert "Traceback" not in log
    assert json.dumps(accumulated["details"]["communication"]).count('"grad_accumulation": 4') == 1


def test_a_compiled_step_still_all_reduces_every_gradient_and_repeats_its_weights(prepared, tmp_path):
    """training.compile "on" on the CPU: the compiled objective inside DDP still sends every parameter's gradient
    once a step through the timing hook, and a second run under the same seed ships the same bytes (issue 31,
    item 5; "auto" would not compile here, runtime.py)."""
    first, parameters = trained(prepared, tmp_path / "a", compile="on")
    assert first["details"]["compile"] == {"setting": "on", "mode": "default", "why": "on: compiled on cpu"}
    assert first["details"]["optimizer"] == "AdamW, fused"
    assert [h["comm_bytes_per_step"] for h in first["details"]["history"]] == [4 * parameters] * 2
    assert "Traceback" not in (tmp_path / "a" / "ev" / "files" / "train" / "train.log").read_text()
    trained(prepared, tmp_path / "b", compile="on")
    same = [(tmp_path / run / "model" / "model.safetensors").read_bytes() for run in ("a", "b")]
    assert same[0] == same[1]
    eager, _ = trained(prepared, tmp_path / "eager")
    assert eager["details"]["compile"]["mode"] is None and "eager on a CPU" in eager["details"]["compile"]["why"]
    # compiled dropout draws its own masks: not the eager run's bytes
    assert (tmp_path / "eager" / "model" / "model.safetensors").read_bytes() != same[0]
