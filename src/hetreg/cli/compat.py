"""``hetreg compat``: the original BIV and IV command lines, passed through unchanged."""

from __future__ import annotations

import typer

compat_app = typer.Typer(
    help="Run the original BIV or IV research command lines unchanged (see docs/compat.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Arguments go to the original parsers as they are, --help included.
_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


@compat_app.command("biv", context_settings=_PASS_THROUGH, add_help_option=False)
def biv(ctx: typer.Context) -> None:
    """The BIV command line: --experiment_settings, --model_settings, --noise_settings, ...

    Example: hetreg compat biv --experiment_settings="exp_tag,7159,wine,True,4000"
    --model_settings="vanilla_ann,biv,0.5" --noise_settings="True,binary_uniform"
    --params_settings="meanvar_avg,0.5,1" --parameters="True,0.01,1,0.3,0" --dry-run
    """
    from hetreg.compat import cli_biv

    raise typer.Exit(cli_biv(list(ctx.args), prog="hetreg compat biv"))


@compat_app.command("iv", context_settings=_PASS_THROUGH, add_help_option=False)
def iv(ctx: typer.Context) -> None:
    """The precursor's IV command line: --exp_settings, --noise_settings, --noise_params, --estim_noise_params."""
    from hetreg.compat import cli_iv

    raise typer.Exit(cli_iv(list(ctx.args), prog="hetreg compat iv"))
