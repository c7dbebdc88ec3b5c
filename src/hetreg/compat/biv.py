"""The original BIV command line (``python main.py --experiment_settings=... ...``), unchanged.

Six comma-separated options, read by position exactly as the original ``main.py``::

    --experiment_settings  "TAG,SEED,DATASET,NORMALIZE,TRAIN_SIZE"
    --model_settings       "MODEL,LOSS[,EPS_OR_THRESHOLD]"
    --noise_settings       "NOISE[,NOISE_TYPE]"
    --params_settings      "PARAMS_TYPE[,P[,AVG_MEAN]]"
    --parameters           "v1,v2,..."
    --extra_exp            "TRAIN_BS,VAR_DISTURBANCE,NORMALIZE_BIV,LR"

:func:`resolve_biv` turns them into a :class:`~hetreg.compat._common.ResolvedExperiment`;
:func:`cli_biv` is the command (``main.py`` at the repository root and ``hetreg compat biv``).
The variance distributions are built in raw label units with :mod:`hetreg.noise`; see
``docs/compat.md`` for every position and every deliberate divergence from the original.
"""

from __future__ import annotations

from typing import Any, Sequence

from hetreg.compat._common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPS,
    DEFAULT_THRESHOLD,
    EPOCHS,
    TEST_SIZES,
    Fields,
    ResolvedExperiment,
    RunOptions,
    check_train_size,
    construct,
    fail,
    make_parser,
    run_cli,
)

DATASETS = {"utkf": "utkface", "wine": "wine", "bike": "bike"}
MODELS = ("vanilla_cnn", "resnet", "vanilla_ann")
MODEL_DATASETS = {"vanilla_cnn": ("utkf",), "resnet": ("utkf",), "vanilla_ann": ("wine", "bike")}
LOSSES = ("mse", "cutoffMSE", "iv", "biv")
NOISE_TYPES = ("uniform", "binary_uniform", "gamma")
PARAMS_TYPES = ("boundaries", "alphabeta", "meanvar", "meanvar_avg")
PARAMS_FOR_NOISE = {
    "uniform": ("boundaries", "meanvar"),
    "binary_uniform": ("boundaries", "meanvar", "meanvar_avg"),
    "gamma": ("alphabeta", "meanvar"),
}
LOSSES_NEEDING_NOISE = {
    "biv": "its weights are 1/(σ²+ε) of the label-noise variances",
    "iv": "its weights are 1/(σ²+ε) of the label-noise variances",
    "cutoffMSE": "it keeps the labels whose noise variance is below the threshold",
}

DEFAULTS = {
    "experiment_settings": "0",
    "model_settings": "0",
    "noise_settings": "0",
    "params_settings": "0",
    "parameters": "0",
    "extra_exp": "256,0,True,0.01",
}


def _model(model: str, dataset: str) -> tuple[str, dict[str, Any]]:
    if model == "vanilla_cnn":
        return "cnn", {}
    if model == "resnet":
        return "resnet18", {}
    return "mlp", {"preset": dataset}


def _noise(noise_type: str, params: Fields, parameters: Fields, notes: list[str]) -> Any:
    """The variance distribution of ``--noise_settings``/``--params_settings``/``--parameters``."""
    from hetreg import noise

    params_type = params.choice(0, PARAMS_TYPES)
    params.exactly(3, "--params_settings")
    valid = PARAMS_FOR_NOISE[noise_type]
    if params_type not in valid:
        fail(
            f"{params.label(0)}: {params_type!r} does not apply to noise type {noise_type!r}; "
            f"valid for {noise_type}: {', '.join(valid)}"
        )

    if noise_type == "binary_uniform":
        p = params.number(1, minimum=0.0, maximum=1.0, what="probability of the first component")
    else:
        if params.has(1) and params.text(1):
            notes.append(f"{params.label(1)}={params.text(1)!r} is ignored for noise type {noise_type} (as in the original)")
        p = 1.0

    if params_type == "boundaries":
        if noise_type == "uniform":
            v = parameters.renamed(("A", "B"))
            v.exactly(2, "uniform/boundaries")
            a, b = v.number(0), v.number(1)
            return construct(f"{parameters.option} (A,B)=({a:g},{b:g})", lambda: noise.uniform_from_bounds(a, b))
        v = parameters.renamed(("A1", "A2", "B1", "B2"))
        v.exactly(4, "binary_uniform/boundaries")
        a1, a2, b1, b2 = (v.number(i) for i in range(4))
        first = construct(f"{v.option} component 1 (A1,B1)=({a1:g},{b1:g})", lambda: noise.uniform_from_bounds(a1, b1))
        second = construct(f"{v.option} component 2 (A2,B2)=({a2:g},{b2:g})", lambda: noise.uniform_from_bounds(a2, b2))
        return noise.binary_uniform(p, first, second)

    if params_type == "alphabeta":
        v = parameters.renamed(("ALPHA", "BETA"))
        v.exactly(2, "gamma/alphabeta")
        shape, rate = v.number(0), v.number(1)
        return construct(
            f"{v.option} (ALPHA,BETA)=({shape:g},{rate:g})", lambda: noise.gamma_from_shape_rate(shape, rate)
        )

    # meanvar / meanvar_avg: a leading VAR_SCALE boolean, then means, then variances
    if noise_type == "gamma":
        v = parameters.renamed(("VAR_SCALE", "MU", "V"))
        v.exactly(3, "gamma/meanvar")
        scaled = v.boolean(0)
        mu, var = v.number(1), v.number(2)
        if scaled:
            notes.append(
                f"{v.label(0)}=True is a placeholder for gamma and is ignored (as in the original): "
                f"V={var:g} is the variance of sigma^2, not a heteroscedasticity scale as for uniform noise "
                f"(gamma has no such form), so sigma^2 ~ Gamma(shape MU^2/V, rate MU/V)"
            )
        return construct(f"{v.option} (MU,V)=({mu:g},{var:g})", lambda: noise.gamma_from_mean_var(mu, var))

    if noise_type == "uniform":
        v = parameters.renamed(("VAR_SCALE", "MU", "V"))
        v.exactly(3, "uniform/meanvar")
        scaled = v.boolean(0)
        mu = v.number(1)
        if scaled:
            s = v.number(2, minimum=0.0, maximum=1.0, what="heteroscedasticity scale s, as VAR_SCALE=True")
            return construct(f"{v.option} (MU,s)=({mu:g},{s:g})", lambda: noise.uniform_max_heteroscedastic(mu, s))
        var = v.number(2, minimum=0.0, what="variance of the noise variance")
        return construct(f"{v.option} (MU,V)=({mu:g},{var:g})", lambda: noise.uniform_from_mean_var(mu, var))

    # binary_uniform, meanvar or meanvar_avg
    v = parameters.renamed(("VAR_SCALE", "MU1", "MU2", "V1", "V2"))
    v.exactly(5, f"binary_uniform/{params_type}")
    scaled = v.boolean(0)
    mu1, mu2 = v.number(1), v.number(2)
    if params_type == "meanvar_avg":
        target = params.number(2, minimum=0.0, what="target mixture mean X of the noise variance")
        if p >= 1.0:
            fail(
                f"{params.option}: meanvar_avg solves mu2 = (X - p*mu1)/(1 - p), which needs p < 1, got p = {p:g}; "
                "use meanvar to give mu2 directly"
            )
        mu2 = construct(
            f"{params.option} (p,X)=({p:g},{target:g}) with MU1={mu1:g}",
            lambda: noise.mixture_mean_target(p, mu1, target),
        )
        notes.append(f"{v.label(2)}={v.text(2)} is replaced by (X - p*mu1)/(1 - p) = {mu2:g} (meanvar_avg)")
    if scaled:
        s = v.number(3, minimum=0.0, maximum=1.0, what="heteroscedasticity scale s of both components, as VAR_SCALE=True")
        v.number(4)  # V2 is ignored when VAR_SCALE=True, but must still be a number (as in the original)
        first = construct(f"{v.option} component 1 (MU1,s)=({mu1:g},{s:g})", lambda: noise.uniform_max_heteroscedastic(mu1, s))
        second = construct(f"{v.option} component 2 (MU2,s)=({mu2:g},{s:g})", lambda: noise.uniform_max_heteroscedastic(mu2, s))
    else:
        v1 = v.number(3, minimum=0.0, what="variance of the first noise-variance distribution")
        v2 = v.number(4, minimum=0.0, what="variance of the second noise-variance distribution")
        first = construct(f"{v.option} component 1 (MU1,V1)=({mu1:g},{v1:g})", lambda: noise.uniform_from_mean_var(mu1, v1))
        second = construct(f"{v.option} component 2 (MU2,V2)=({mu2:g},{v2:g})", lambda: noise.uniform_from_mean_var(mu2, v2))
    return noise.binary_uniform(p, first, second)


def resolve_biv(
    experiment_settings: str = DEFAULTS["experiment_settings"],
    model_settings: str = DEFAULTS["model_settings"],
    noise_settings: str = DEFAULTS["noise_settings"],
    params_settings: str = DEFAULTS["params_settings"],
    parameters: str = DEFAULTS["parameters"],
    extra_exp: str = DEFAULTS["extra_exp"],
    *,
    epochs: int | None = None,
) -> ResolvedExperiment:
    """Read the six original options and return the experiment they define.

    Raises:
        CompatError: for every invalid value or combination (message names the option, the
            position and the valid values).
    """
    notes: list[str] = []
    exp = Fields.split("--experiment_settings", experiment_settings, ("TAG", "SEED", "DATASET", "NORMALIZE", "TRAIN_SIZE"))
    tag = exp.text(0)
    seed = exp.integer(1, minimum=0)
    dataset_key = exp.choice(2, tuple(DATASETS))
    dataset = DATASETS[dataset_key]
    normalize = exp.boolean(3)
    train_size = exp.integer(4, minimum=1)
    exp.exactly(5, "--experiment_settings")
    check_train_size(dataset, train_size, exp.label(4))

    mod = Fields.split("--model_settings", model_settings, ("MODEL", "LOSS", "EPS_OR_THRESHOLD"))
    model_key = mod.choice(0, MODELS)
    if dataset_key not in MODEL_DATASETS[model_key]:
        fail(
            f"--model_settings: model {model_key!r} does not fit dataset {dataset_key!r}; "
            "use vanilla_cnn or resnet with utkf, vanilla_ann with wine or bike"
        )
    model, model_options = _model(model_key, dataset)
    loss_key = mod.choice(1, LOSSES)
    mod.exactly(3, "--model_settings")

    ext = Fields.split("--extra_exp", extra_exp, ("TRAIN_BS", "VAR_DISTURBANCE", "NORMALIZE_BIV", "LR"))
    batch_size = ext.integer(0, minimum=0) or DEFAULT_BATCH_SIZE
    disturbance = ext.number(1, minimum=0.0, what="variance disturbance d")
    normalize_biv = ext.boolean(2)
    lr = ext.number(3, minimum=0.0, strict_minimum=True, what="learning rate")
    ext.exactly(4, "--extra_exp")

    eps: float | None = None
    threshold: float | None = None
    if loss_key in ("biv", "iv"):
        eps = mod.number(2, minimum=0.0, what="epsilon") if mod.has(2) else DEFAULT_EPS
        loss = "iv" if loss_key == "iv" or not normalize_biv else "biv"
    elif loss_key == "cutoffMSE":
        threshold = mod.number(2, minimum=0.0, strict_minimum=True, what="cutoff threshold") if mod.has(2) else DEFAULT_THRESHOLD
        loss = "cutoff"
        if not mod.has(2) and normalize:
            notes.append(
                f"{mod.label(2)} not given: the cutoff keeps sigma^2 < {DEFAULT_THRESHOLD:g} in raw label units "
                f"(divided by s_y^2 like an explicit threshold); the original applied its default {DEFAULT_THRESHOLD:g} "
                "to the normalised variances, which keeps other samples wherever s_y^2 is not 1 (see docs/compat.md). "
                "Give the threshold explicitly to choose"
            )
    else:
        loss = "mse"
        if mod.has(2):
            notes.append(f"{mod.label(2)}={mod.text(2)!r} is ignored for loss mse (as in the original)")
    if loss_key in ("mse", "cutoffMSE") and not normalize_biv:
        notes.append(f"{ext.label(2)}=False only affects loss biv (it selects IV); ignored for {loss_key}")

    noise_fields = Fields.split("--noise_settings", noise_settings, ("NOISE", "NOISE_TYPE"))
    has_noise = noise_fields.boolean(0)
    distribution = None
    if has_noise:
        noise_type = noise_fields.choice(1, NOISE_TYPES)
        noise_fields.exactly(2, "--noise_settings")
        params = Fields.split("--params_settings", params_settings, ("PARAMS_TYPE", "P", "AVG_MEAN"))
        values = Fields.split("--parameters", parameters, ())
        distribution = _noise(noise_type, params, values, notes)
    elif loss_key in LOSSES_NEEDING_NOISE:
        fail(
            f"loss {loss_key} needs label noise ({LOSSES_NEEDING_NOISE[loss_key]}) but --noise_settings is False; "
            'turn noise on (e.g. --noise_settings="True,uniform") or use loss mse'
        )

    return ResolvedExperiment(
        source="biv",
        tag=tag,
        dataset=dataset,
        model=model,
        model_options=model_options,
        loss=loss,
        eps=eps,
        threshold=threshold,
        seed=seed,
        train_size=train_size,
        test_size=TEST_SIZES[dataset],
        normalize=normalize,
        batch_size=batch_size,
        lr=lr,
        epochs=epochs if epochs is not None else EPOCHS[dataset],
        variance_disturbance=disturbance,
        noise=distribution,
        notes=tuple(notes),
    )


_EPILOG = """\
example:
  python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" \\
    --model_settings="vanilla_cnn,cutoffMSE" --noise_settings="True,binary_uniform" \\
    --params_settings="meanvar_avg,0.5,3000" --parameters="True,0.5,1,0.3,0"

Every position is described in docs/compat.md."""


def _parse(argv: Sequence[str], prog: str = "main.py") -> tuple[ResolvedExperiment, RunOptions]:
    parser = make_parser(
        prog,
        "Run an experiment of the original BIV command line with hetreg.",
        _EPILOG,
        [
            ("--experiment_settings", DEFAULTS["experiment_settings"], '"TAG,SEED,DATASET,NORMALIZE,TRAIN_SIZE"'),
            ("--model_settings", DEFAULTS["model_settings"], '"MODEL,LOSS[,EPS_OR_THRESHOLD]"'),
            ("--noise_settings", DEFAULTS["noise_settings"], '"NOISE[,NOISE_TYPE]"'),
            ("--params_settings", DEFAULTS["params_settings"], '"PARAMS_TYPE[,P[,AVG_MEAN]]"'),
            ("--parameters", DEFAULTS["parameters"], '"v1,v2,..." (meaning depends on the noise and params types)'),
            ("--extra_exp", DEFAULTS["extra_exp"], '"TRAIN_BS,VAR_DISTURBANCE,NORMALIZE_BIV,LR"'),
        ],
    )
    ns = parser.parse_args(list(argv))
    options = RunOptions.from_namespace(ns)
    resolved = resolve_biv(
        ns.experiment_settings,
        ns.model_settings,
        ns.noise_settings,
        ns.params_settings,
        ns.parameters,
        ns.extra_exp,
        epochs=options.epochs,
    )
    return resolved, options


def cli_biv(argv: list[str], *, prog: str = "main.py") -> int:
    """Run the original BIV command line; returns the exit code (2 for an invalid command line)."""
    return run_cli(argv, lambda args: _parse(args, prog))
