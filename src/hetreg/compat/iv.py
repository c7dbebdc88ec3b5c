"""The command line of the IV precursor of BIV (``--exp_settings``, ``--noise_settings``, ...).

Four comma-separated options, as in the precursor's README::

    --exp_settings        "TAG,SEED,NORMALIZE,LOSS,AVG_MEAN"
    --noise_settings      "NOISE,TYPE,ESTIM,MAX_HETERO,HETERO_SCALE,P,THRESHOLD_ON,THRESHOLD"
    --noise_params        "a1,...,am,b1,...,bm"        (ESTIM=False: bounds, or gamma shape/rate)
    --estim_noise_params  "mu1,...,mum,v1,...,vm"      (ESTIM=True: means and variances)

A list of n = 2m numbers describes m components, component i being (value i, value i + m),
as in the precursor. The precursor trained the vanilla CNN on UTKFace; where its README is
silent or ambiguous this layer follows the BIV code (same dataset handling, noise
constructions, defaults). Every choice is listed in ``docs/compat.md``.
"""

from __future__ import annotations

from typing import Any, Sequence

from hetreg.compat._common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EPS,
    DEFAULT_LR,
    EPOCHS,
    TEST_SIZES,
    Fields,
    ResolvedExperiment,
    RunOptions,
    construct,
    fail,
    interval_weights,
    make_parser,
    mixture,
    run_cli,
)

LOSSES = ("mse", "iv", "biv")
NOISE_TYPES = ("uniform", "gamma")
#: The precursor's fixed experiment: UTKFace, the vanilla CNN, 16000 training images.
DATASET = "utkface"
MODEL = "cnn"
TRAIN_SIZE = 16000

DEFAULTS = {"exp_settings": "0", "noise_settings": "0", "noise_params": "0", "estim_noise_params": "0"}

_NOISE_LAYOUT = ("NOISE", "TYPE", "ESTIM", "MAX_HETERO", "HETERO_SCALE", "P", "THRESHOLD_ON", "THRESHOLD")


def _numbers(fields: Fields) -> list[float]:
    """Every value of a parameter list as a number (the precursor converted both lists with ``float``)."""
    return [fields.number(i) for i in range(len(fields.values))]


def _components(fields: Fields, what: str) -> list[tuple[float, float]]:
    """Pairs (value i, value i + m) of a list of 2m numbers."""
    values = _numbers(fields)
    if len(values) < 2 or len(values) % 2:
        fail(
            f"{fields.option}={fields.raw!r}: {what} needs an even number of values (2m for m components: "
            f"the m first values then the m second values), got {len(values)}"
        )
    m = len(values) // 2
    return [(values[i], values[i + m]) for i in range(m)]


def resolve_iv(
    exp_settings: str = DEFAULTS["exp_settings"],
    noise_settings: str = DEFAULTS["noise_settings"],
    noise_params: str = DEFAULTS["noise_params"],
    estim_noise_params: str = DEFAULTS["estim_noise_params"],
    *,
    epochs: int | None = None,
) -> ResolvedExperiment:
    """Read the four precursor options and return the experiment they define.

    Raises:
        CompatError: for every invalid value or combination.
    """
    from hetreg import noise

    notes: list[str] = []
    exp = Fields.split("--exp_settings", exp_settings, ("TAG", "SEED", "NORMALIZE", "LOSS", "AVG_MEAN"))
    if len(exp.values) == 7:
        fail(
            f"--exp_settings={exp_settings!r}: 7 values (TAG,SEED,DATASET,NORMALIZE,LOSS,MODEL,AVG_MEAN, the "
            "layout of a later precursor README) are not supported; the IV command line takes exactly 5: "
            '--exp_settings="TAG,SEED,NORMALIZE,LOSS,AVG_MEAN". For other datasets and models use the BIV '
            "command line (hetreg compat biv / main.py), which superseded it"
        )
    exp.exactly(5, "the IV command line")
    tag = exp.text(0)
    seed = exp.integer(1, minimum=0)
    normalize = exp.boolean(2)
    loss_key = exp.choice(3, LOSSES)
    avg_mean = exp.number(4)

    settings = Fields.split("--noise_settings", noise_settings, _NOISE_LAYOUT)
    has_noise = settings.boolean(0)
    distribution: Any = None
    threshold: float | None = None
    if has_noise:
        noise_type = settings.choice(1, NOISE_TYPES)
        estimate = settings.boolean(2)
        max_hetero = settings.boolean(3)
        settings.number(4)  # HETERO_SCALE: a number even when unused (range checked when used)
        p = settings.number(5, minimum=0.0, maximum=1.0, what="probability of the first half of the components")
        threshold_on = settings.boolean(6)
        settings.number(7)  # THRESHOLD: a number even when unused
        settings.exactly(8, "--noise_settings")
        direct = Fields.split("--noise_params", noise_params, ())
        estim = Fields.split("--estim_noise_params", estim_noise_params, ())
        # the precursor converted both lists to numbers, whichever it used
        _numbers(direct)
        _numbers(estim)

        if estimate:
            pairs = _components(estim, "ESTIM=True (mu1..mum, v1..vm)")
            if avg_mean >= 0 and len(pairs) == 2 and p < 1:
                mu1 = pairs[0][0]
                mu2 = construct(
                    f"--exp_settings AVG_MEAN={avg_mean:g} with P={p:g}, mu1={mu1:g}",
                    lambda: noise.mixture_mean_target(p, mu1, avg_mean),
                )
                notes.append(f"mu2={pairs[1][0]:g} is replaced by (AVG_MEAN - p*mu1)/(1 - p) = {mu2:g}")
                pairs[1] = (mu2, pairs[1][1])
            elif avg_mean >= 0:
                why = "P = 1" if p >= 1 else f"{len(pairs)} component(s), not 2"
                notes.append(f"AVG_MEAN={avg_mean:g} is not applied ({why}), as in the precursor")
            if noise_type == "uniform" and max_hetero:
                scale = settings.number(4, minimum=0.0, maximum=1.0, what="heteroscedasticity scale, as MAX_HETERO=True")
                comps = [
                    construct(f"--estim_noise_params component {i + 1} (mu, s)=({mu:g},{scale:g})",
                              lambda mu=mu: noise.uniform_max_heteroscedastic(mu, scale))
                    for i, (mu, _) in enumerate(pairs)
                ]
                notes.append("MAX_HETERO=True: the variances v1..vm are ignored, every component has variance s*mu**2/3")
            else:
                if max_hetero:
                    notes.append("MAX_HETERO=True applies to uniform noise only; ignored for gamma")
                build = noise.uniform_from_mean_var if noise_type == "uniform" else noise.gamma_from_mean_var
                comps = [
                    construct(f"--estim_noise_params component {i + 1} (mu, v)=({mu:g},{v:g})",
                              lambda mu=mu, v=v: build(mu, v))
                    for i, (mu, v) in enumerate(pairs)
                ]
        else:
            pairs = _components(direct, "ESTIM=False (a1..am, b1..bm)")
            if max_hetero:
                notes.append("MAX_HETERO=True applies only with ESTIM=True (means and variances); ignored")
            if avg_mean >= 0:
                notes.append(f"AVG_MEAN={avg_mean:g} applies only with ESTIM=True; ignored")
            if noise_type == "uniform":
                comps = [
                    construct(f"--noise_params component {i + 1} (a, b)=({a:g},{b:g})",
                              lambda a=a, b=b: noise.uniform_from_bounds(a, b))
                    for i, (a, b) in enumerate(pairs)
                ]
            else:
                comps = [
                    construct(f"--noise_params component {i + 1} (shape, rate)=({a:g},{b:g})",
                              lambda a=a, b=b: noise.gamma_from_shape_rate(a, b))
                    for i, (a, b) in enumerate(pairs)
                ]
        distribution = mixture(comps, interval_weights(len(comps), p))

        if threshold_on:
            if loss_key != "mse":
                fail(
                    f"THRESHOLD_ON=True (--noise_settings position 6) filters the noisy labels, which hetreg "
                    f"runs as the cutoff loss (MSE over sigma^2 < THRESHOLD); it cannot be combined with loss "
                    f"{loss_key}: use loss mse, or THRESHOLD_ON=False"
                )
            threshold = settings.number(7, minimum=0.0, strict_minimum=True, what="noise threshold")
    else:
        if len(settings.values) > 1:
            notes.append("NOISE=False: the other --noise_settings positions and the parameter lists are ignored")
        if loss_key in ("iv", "biv"):
            fail(
                f"loss {loss_key} needs label noise (its weights are 1/(sigma^2+eps) of the noise variances) but "
                '--noise_settings NOISE is False; turn noise on (e.g. --noise_settings="True,uniform,...") or use loss mse'
            )

    if threshold is not None:
        loss, eps = "cutoff", None
    elif loss_key in ("iv", "biv"):
        loss, eps = loss_key, DEFAULT_EPS
    else:
        loss, eps = "mse", None

    return ResolvedExperiment(
        source="iv",
        tag=tag,
        dataset=DATASET,
        model=MODEL,
        model_options={},
        loss=loss,
        eps=eps,
        threshold=threshold,
        seed=seed,
        train_size=TRAIN_SIZE,
        test_size=TEST_SIZES[DATASET],
        normalize=normalize,
        batch_size=DEFAULT_BATCH_SIZE,
        lr=DEFAULT_LR,
        epochs=epochs if epochs is not None else EPOCHS[DATASET],
        variance_disturbance=0.0,
        noise=distribution,
        notes=tuple(notes),
    )


_EPILOG = """\
example:
  hetreg compat iv --exp_settings="classical_1_7159,7159,True,mse,5000" \\
    --noise_settings="True,uniform,True,False,0.5,1,False,3" \\
    --noise_params="0,0,0,0" --estim_noise_params="0.52,500,0.09,0"

Every position is described in docs/compat.md."""


def _parse(argv: Sequence[str], prog: str = "hetreg compat iv") -> tuple[ResolvedExperiment, RunOptions]:
    parser = make_parser(
        prog,
        "Run an experiment of the IV precursor command line (UTKFace, vanilla CNN) with hetreg.",
        _EPILOG,
        [
            ("--exp_settings", DEFAULTS["exp_settings"], '"TAG,SEED,NORMALIZE,LOSS,AVG_MEAN"'),
            ("--noise_settings", DEFAULTS["noise_settings"], '"' + ",".join(_NOISE_LAYOUT) + '"'),
            ("--noise_params", DEFAULTS["noise_params"], '"a1..am,b1..bm" (used when ESTIM=False)'),
            ("--estim_noise_params", DEFAULTS["estim_noise_params"], '"mu1..mum,v1..vm" (used when ESTIM=True)'),
        ],
    )
    ns = parser.parse_args(list(argv))
    options = RunOptions.from_namespace(ns)
    resolved = resolve_iv(
        ns.exp_settings, ns.noise_settings, ns.noise_params, ns.estim_noise_params, epochs=options.epochs
    )
    return resolved, options


def cli_iv(argv: list[str], *, prog: str = "hetreg compat iv") -> int:
    """Run the IV precursor command line; returns the exit code (2 for an invalid command line)."""
    return run_cli(argv, lambda args: _parse(args, prog))

