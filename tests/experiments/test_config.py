"""The experiment configuration schema: validation messages, overrides, YAML round trip, seeds, hash."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from hetreg.experiments.config import (
    SEED_STREAMS,
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_hash,
    derive_seed,
    format_validation_error,
    load_config,
    parse_yaml_value,
    save_config,
)

BASE = {"data": {"name": "synthetic-hetero"}, "model": {"name": "mlp"}}


def errors_of(data) -> str:
    with pytest.raises(ValidationError) as info:
        ExperimentConfig.model_validate(data)
    return format_validation_error(info.value)


def override_error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        apply_overrides(BASE, list(overrides))
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# Unknown keys and bad values
# ---------------------------------------------------------------------------------------------


def test_unknown_top_level_key_names_it_and_the_allowed_keys():
    message = errors_of({**BASE, "optimiser": {"lr": 0.1}})
    assert "optimiser: unknown key 'optimiser' in the top level" in message
    assert "allowed keys: name, seed, seeds, data, noise, model, loss, lds, fds, optimizer, schedule, train, tracking" in message


def test_unknown_nested_key_names_its_section():
    message = errors_of({**BASE, "optimizer": {"lrr": 0.1}, "lds": {"bins": 10, "kernal": "gaussian"}})
    assert "optimizer.lrr: unknown key 'lrr' in optimizer; allowed keys: name, lr, weight_decay, momentum" in message
    assert "lds.kernal: unknown key 'kernal' in lds; allowed keys: bins, bin_width, edges, kernel, kernel_size, kernel_sigma, scheme" in message


def test_bad_choice_lists_the_allowed_values():
    message = errors_of({**BASE, "optimizer": {"name": "rmsprop"}, "train": {"eval_every": "never"}})
    assert "optimizer.name: Input should be 'adam', 'adamw' or 'sgd' (got 'rmsprop')" in message
    assert "train.eval_every: eval_every must be 'epoch' or a positive number of steps, got 'never'" in message


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("loss.name=l3", "loss.name: unknown loss 'l3'; allowed values: beta_nll, biv, bmc"),
        ("data.name=mnist", "data.name: unknown dataset 'mnist'; allowed values: bike, csv, diabetes"),
        ("model.name=vit", "model.name: unknown model 'vit'; allowed values: cnn, mlp, resnet18"),
        ("tracking.trackers=[neptune]", "tracking.trackers[0]: Input should be 'jsonl', 'tensorboard', 'mlflow' or 'wandb'"),
        ("train.device=cuda", "train.device: Input should be 'cpu' (got 'cuda')"),
        ("schedule.name=linear", "schedule.name: Input should be 'none', 'step' or 'cosine'"),
        ("train.epochs=0", "train.epochs: Input should be greater than or equal to 1 (got 0)"),
        ("optimizer.lr=-1", "optimizer.lr: Input should be greater than 0"),
        ("loss.eps=-0.5", "loss.eps: eps must be a finite number >= 0 or 'auto', got -0.5"),
        ("loss.eps=big", "loss.eps: eps must be a finite number >= 0 or 'auto', got 'big'"),
        ("lds.kernel_size=4", "lds.kernel_size: kernel_size must be odd, got 4"),
        ("noise.distribution={kind: beta, a: 1}", "noise.distribution: unknown distribution kind 'beta'; valid kinds: uniform"),
        ("noise.distribution={kind: uniform, low: 0}", "noise.distribution: a 'uniform' distribution takes exactly the keys low, high"),
        ("noise.disturbance=-1", "noise.disturbance: Input should be greater than or equal to 0"),
        ("data.options={seed: 3}", "data.options: data.options.seed is not allowed; use seeds.data"),
        ("data.options={val_size: 3}", "data.options: set data.val_size instead of data.options.val_size"),
        ("model.options={depth: 3}", "unknown option(s) depth in model.options for model 'mlp'; valid options:"),
        ("optimizer.momentum=0.9", "momentum applies to optimizer 'sgd' only"),
    ],
)
def test_invalid_values_are_reported_with_their_key(override, expected):
    assert expected in override_error(override)


def test_loss_parameters_are_checked_against_the_chosen_loss():
    message = override_error("loss.name=biv", "loss.threshold=1.0")
    assert "loss.threshold is not a parameter of loss 'biv'; its parameters are: eps, min_ebs" in message
    assert "its parameters are: (none)" in override_error("loss.eps=0.1")  # mse takes none
    assert "loss.params.gamma is not a parameter of loss 'cutoff'; its parameters are: threshold" in override_error(
        "loss.name=cutoff", "loss.params={gamma: 2}"
    )
    assert "min_ebs is used only with eps='auto'" in override_error("loss.name=biv", "loss.min_ebs=0.5")
    assert "eps='auto' needs min_ebs" in override_error("loss.name=biv", "loss.eps=auto")
    assert "loss.prior_bin_width applies to loss 'bni' only" in override_error("loss.name=bmc", "loss.prior_bin_width=1")
    assert "set loss.eps directly" in override_error("loss.name=biv", "loss.params={eps: 1}")
    assert "loss.params.prior is set by the trainer" in override_error("loss.name=bni", "loss.params={prior: 1}")


def test_valid_loss_configurations():
    cfg = apply_overrides(BASE, ["loss.name=biv", "loss.eps=auto", "loss.min_ebs=0.5"])
    assert cfg.loss.loss_params() == {"eps": "auto", "min_ebs": 0.5}
    cfg = apply_overrides(BASE, ["loss.name=biv", "loss.eps=auto", "loss.min_ebs=16"])
    assert cfg.loss.min_ebs == 16 and isinstance(cfg.loss.min_ebs, int)  # an int is an absolute size
    cfg = apply_overrides(BASE, ["loss.name=bni", "loss.init_noise_sigma=0.5", "loss.learn_sigma=false"])
    assert cfg.loss.loss_params() == {"init_noise_sigma": 0.5, "learn_sigma": False}
    assert apply_overrides(BASE, ["loss.name=beta_nll", "loss.beta=0.5"]).loss.beta == 0.5


def test_model_head_follows_the_loss():
    assert apply_overrides(BASE, ["loss.name=gaussian_nll"]).resolved().model.head == "mean_var"
    assert ExperimentConfig.model_validate(BASE).resolved().model.head == "mean"
    assert "loss 'gaussian_nll' needs a predicted variance: set model.head to 'mean_var'" in override_error(
        "loss.name=gaussian_nll", "model.head=mean"
    )


def test_lds_binning_is_exclusive():
    assert "set only one of lds.bins, lds.bin_width, lds.edges" in override_error("lds.bins=10", "lds.bin_width=1")
    assert "edges must hold at least 2 strictly increasing values" in override_error("lds.edges=[1, 1]")
    cfg = apply_overrides(BASE, ["lds.scheme=inverse"])
    assert cfg.lds is not None and cfg.lds.bin_spec() == 100 and cfg.lds.kernel_spec() == {"kind": "gaussian", "size": 5, "sigma": 2.0}
    assert apply_overrides(BASE, ["lds.bin_width=1", "lds.kernel=none"]).lds.bin_spec() == 1.0
    assert apply_overrides(BASE, ["lds.bins=12"]).lds.bin_spec() == 12


@pytest.mark.parametrize("section", ["lds", "fds"])
def test_a_float_bin_count_is_refused_not_read_as_one_bin(section):
    # bins=1.0 means a bin width in lds_weights; in a config it would be a single bin
    message = override_error(f"{section}={{bins: 1.0}}")
    assert "bins is a number of bins (an integer), got 1.0" in message
    assert "set bin_width: 1 instead" in message


def test_configs_are_immutable():
    cfg = ExperimentConfig.model_validate(BASE)
    with pytest.raises(ValidationError):
        cfg.seed = 4  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------


def test_overrides_parse_yaml_values():
    cfg = apply_overrides(
        BASE,
        [
            "loss.name=biv",
            "loss.eps=0.5",
            "train.epochs=3",
            "optimizer.lr=1e-3",
            "train.eval_every=25",
            "data.root=null",
            "data.options.n=500",
            "tracking.trackers=[tensorboard, mlflow]",
            "noise.distribution={kind: constant, value: 1.0}",
            "name=my run",
        ],
    )
    assert cfg.loss.eps == 0.5 and cfg.train.epochs == 3 and cfg.optimizer.lr == 1e-3
    assert cfg.train.eval_every == 25 and cfg.data.root is None and cfg.data.options == {"n": 500}
    assert cfg.tracking.trackers == ["tensorboard", "mlflow"]
    assert cfg.noise.distribution == {"kind": "constant", "value": 1.0}
    assert cfg.name == "my run"


def test_overrides_apply_to_a_config_object_and_later_ones_win():
    cfg = apply_overrides(BASE, ["train.epochs=3"])
    again = apply_overrides(cfg, ["train.epochs=4", "train.epochs=5", "lds.bins=7"])
    assert again.train.epochs == 5 and again.lds is not None and again.lds.bins == 7
    assert cfg.train.epochs == 3


def test_override_errors_name_the_key_and_the_allowed_keys():
    assert override_error("train.epoch=3") == (
        "unknown key 'train.epoch': 'epoch' is not a key of train; allowed keys: epochs, batch_size, eval_every, "
        "eval_batch_size, shuffle, drop_last, augment, num_threads, device"
    )
    assert "'foo' is not a key of the top level; allowed keys: name, seed" in override_error("foo=1")
    assert "loss.eps is a value, not a section" in override_error("loss.eps.x=1")
    assert "expected key=value" in override_error("train.epochs")
    assert "use dotted keys" in override_error("train..epochs=3")
    with pytest.raises(ConfigError, match="list of 'key=value' strings"):
        apply_overrides(BASE, "train.epochs=3")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("2E5", 2e5), ("-1.5e-2", -0.015), ("3", 3), ("0.5", 0.5), ("auto", "auto"), ("null", None), ("true", True), ("[1, 2]", [1, 2])],
)
def test_yaml_values_with_yaml_12_floats(text, value):
    parsed = parse_yaml_value(text)
    assert parsed == value and type(parsed) is type(value)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def full_config() -> ExperimentConfig:
    return apply_overrides(
        BASE,
        [
            "name=round trip",
            "seed=11",
            "seeds.model=5",
            "data.options={n: 300, d: 6}",
            "data.val_fraction=0.1",
            "noise.distribution={kind: mixture, weights: [0.5, 0.5], components: [{kind: uniform, low: 0.1, high: 1.0}, {kind: constant, value: 3.0}]}",
            "noise.disturbance=0.25",
            "loss.name=biv",
            "loss.eps=auto",
            "loss.min_ebs=0.5",
            "lds.edges=[0.0, 1.5, 3.0]",
            "optimizer.name=sgd",
            "optimizer.momentum=0.9",
            "optimizer.lr=1e-4",
            "schedule.name=cosine",
            "train.eval_every=7",
            "tracking.trackers=[jsonl]",
        ],
    )


def test_yaml_round_trip(tmp_path):
    cfg = full_config()
    path = save_config(cfg, tmp_path / "sub" / "config.yaml")
    assert load_config(path) == cfg
    resolved = cfg.resolved()
    assert load_config(save_config(resolved, tmp_path / "resolved.yaml")) == resolved
    text = path.read_text()
    assert text.index("name:") < text.index("data:") < text.index("train:")  # schema order, readable


def test_load_config_reports_the_file_and_every_bad_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: {name: synthetic-hetero}\nmodel: {name: mlp}\ntrain: {epochs: 0, bogus: 1}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"invalid configuration in {path}:")
    assert "train.epochs: Input should be greater than or equal to 1" in message
    assert "train.bogus: unknown key 'bogus' in train" in message


def test_load_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="configuration file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(tmp_path / "empty.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("data: {name: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "nomodel.yaml").write_text("data: {name: wine}\n")
    with pytest.raises(ConfigError, match="model: required key is missing"):
        load_config(tmp_path / "nomodel.yaml")


# ---------------------------------------------------------------------------------------------
# Seeds and hash
# ---------------------------------------------------------------------------------------------


def test_derive_seed_is_the_documented_hash():
    digest = hashlib.sha256(b"hetreg:7:noise").digest()
    assert derive_seed(7, "noise") == int.from_bytes(digest[:8], "big") % 2**31


@given(st.integers(0, 2**40))
def test_stream_seeds_differ_and_overrides_win(seed):
    cfg = ExperimentConfig.model_validate({**BASE, "seed": seed})
    seeds = [cfg.seed_for(s) for s in SEED_STREAMS]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2**31 for s in seeds)
    other = ExperimentConfig.model_validate({**BASE, "seed": seed, "seeds": {"model": 5}})
    assert other.seed_for("model") == 5
    assert [other.seed_for(s) for s in ("data", "noise", "train")] == [seeds[0], seeds[1], seeds[3]]


def test_resolved_config_writes_out_seeds_head_and_loss_defaults():
    cfg = apply_overrides(BASE, ["loss.name=cutoff"]).resolved()
    assert cfg.seeds.data == derive_seed(0, "data") and cfg.seeds.train == derive_seed(0, "train")
    assert cfg.loss.threshold == 1.0  # the loss's default, recorded (raw units)
    assert apply_overrides(BASE, ["loss.name=biv"]).resolved().loss.eps == 0.1
    bmc = apply_overrides(BASE, ["loss.name=bmc"]).resolved().loss
    assert (bmc.init_noise_sigma, bmc.learn_sigma, bmc.sigma_lr) == (1.0, True, 1e-2)
    assert apply_overrides(BASE, ["loss.name=gai"]).resolved().loss.prior_components == 8
    assert apply_overrides(BASE, ["loss.name=bni"]).resolved().loss.prior_bin_width == 1.0
    assert cfg.resolved() == cfg


def test_seed_stream_names_are_checked():
    with pytest.raises(ValueError, match="unknown seed stream 'split'; allowed values: data, noise, model, train"):
        ExperimentConfig.model_validate(BASE).seed_for("split")


def test_config_hash_identifies_what_a_run_computes():
    cfg = apply_overrides(BASE, ["loss.name=biv", "loss.eps=0.5"])
    h = config_hash(cfg)
    assert len(h) == 12 and int(h, 16) >= 0
    assert config_hash(apply_overrides(BASE, ["loss.eps=0.5", "loss.name=biv"])) == h  # order of keys
    assert config_hash(cfg.resolved()) == h  # derived values written out
    explicit = apply_overrides(cfg, [f"seeds.model={derive_seed(0, 'model')}"])
    assert config_hash(explicit) == h
    # keys that do not change the results
    same = apply_overrides(cfg, ["name=other", "tracking.trackers=[tensorboard]", "data.root=/elsewhere", "train.num_threads=1"])
    assert config_hash(same) == h
    # keys that do
    for change in ("loss.eps=0.6", "seed=1", "seeds.noise=3", "train.epochs=21", "data.normalize=false"):
        assert config_hash(apply_overrides(cfg, [change])) != h, change
    assert config_hash(apply_overrides(BASE, ["loss.name=biv", "loss.eps=0.1"])) == config_hash(
        apply_overrides(BASE, ["loss.name=biv"])
    )  # an explicit default equals the implicit one


def test_configurations_without_fds_keep_the_hash_they_had_before_the_fds_section():
    """Run stores written before ``fds`` existed must still resume: the reference hash of the
    example configuration was computed by the code of commit 3b91568, which had no fds section."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "wine-biv.yaml"
    cfg = load_config(example)
    assert config_hash(cfg) == "8445593434bf"
    assert config_hash(apply_overrides(cfg, ["fds.bins=20"])) != "8445593434bf"
