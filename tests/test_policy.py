"""The operator's trust policy (core/policy.py) replaces whatever the registry stores: keys, separation of
duties, and the chain folder, relative to the state folder so a copied state folder keeps its own chains."""
import shutil

import pytest

from govtrain.core.config import Config, ConfigError, DatasetSpec
from govtrain.core.policy import load_policy, with_operator_policy


def stored(tmp_path) -> Config:
    """A config as an insider left it in MLflow: their key, no separation of duties, the original's chains."""
    config = Config(dataset=DatasetSpec(path=tmp_path / "d.csv", target="y", numeric=["a"]))
    config.governance.public_keys = ["QUJD" * 10 + "QUJDRA=="]
    config.governance.separation_of_duties = False
    config.governance.chain_dir = tmp_path / "original" / "chains"
    return config


def test_without_a_policy_file_the_defaults_hold_whatever_is_stored(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    governance = with_operator_policy(stored(tmp_path), state).governance
    assert governance.public_keys == [] and governance.separation_of_duties is True
    assert governance.chain_dir == (state / "chains").resolve()


def test_a_copied_state_folder_keeps_its_own_chains(tmp_path):
    original = tmp_path / "original"
    original.mkdir()
    (original / "policy.yaml").write_text("chain_dir: chains\nseparation_of_duties: true\n")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    assert with_operator_policy(stored(tmp_path), copy).governance.chain_dir == (copy / "chains").resolve()


def test_the_policy_file_is_the_operators_word_and_a_bad_one_is_one_line(tmp_path):
    (tmp_path / "policy.yaml").write_text("public_keys: [TEAMKEY]\nseparation_of_duties: false\n")
    governance = with_operator_policy(stored(tmp_path), tmp_path).governance
    assert governance.public_keys == ["TEAMKEY"] and governance.separation_of_duties is False
    (tmp_path / "policy.yaml").write_text("separation_of_duty: false\n")  # a typo must not pass silently
    with pytest.raises(ConfigError, match=r"policy.yaml: separation_of_duty: Extra inputs are not permitted"):
        load_policy(tmp_path)
