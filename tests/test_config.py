import pytest

from govtrain.core.config import ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


MINIMAL = "dataset:\n  path: data/t.csv\n  target: y\n  numeric: [a, b]\n"


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, MINIMAL))
    assert config.dataset.path == tmp_path / "data" / "t.csv"
    assert config.dataset.file_format == "csv"
    assert config.registry.tracking_uri.startswith("sqlite:///")
    assert config.training.workers == 2 and config.split.strategy == "random"


def test_unknown_key_names_its_path(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml: training\.epoch: Extra inputs are not permitted; did you mean "
                                          r"'epochs'\?$"):
        load_config(write(tmp_path, MINIMAL + "training:\n  epoch: 3\n"))
    with pytest.raises(ConfigError, match=r"c\.yaml: trainnig: Extra inputs are not permitted; did you mean "
                                          r"'training'\?$"):
        load_config(write(tmp_path, MINIMAL + "trainnig:\n  epochs: 3\n"))


def test_a_column_typo_gets_the_near_name_and_a_miss_the_columns_the_file_has():
    from govtrain.components.prepare import hint

    assert hint("defualt", {"default", "age", "income"}) == "; did you mean 'default'?"
    assert hint("salary", {"default", "age", "income"}) == "; the file has age, default, income"
    many = {f"c{i:02d}" for i in range(20)}
    assert hint("zzz", many).endswith("c11 and 8 more")


def test_wrong_type_names_its_path(tmp_path):
    with pytest.raises(ConfigError, match=r"training\.batch_size: Input should be a valid integer"):
        load_config(write(tmp_path, MINIMAL + "training:\n  batch_size: big\n"))


def test_fractions_must_sum_to_one(tmp_path):
    with pytest.raises(ConfigError, match="split.fractions: train \\+ val \\+ test must sum to 1"):
        load_config(write(tmp_path, MINIMAL + "split:\n  fractions: {train: 0.5, val: 0.2, test: 0.2}\n"))


def test_group_split_needs_an_entity_column(tmp_path):
    with pytest.raises(ConfigError, match="group' needs dataset.entity_id"):
        load_config(write(tmp_path, MINIMAL + "split:\n  strategy: group\n"))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml: line \d+ not valid YAML"):
        load_config(write(tmp_path, "dataset:\n  path: [unclosed\n"))


def test_digest_changes_with_any_value(tmp_path):
    one = load_config(write(tmp_path, MINIMAL))
    two = load_config(write(tmp_path, MINIMAL + "training:\n  lr: 0.02\n"))
    assert one.digest() != two.digest() and len(one.digest()) == 64
