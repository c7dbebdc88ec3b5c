"""The original BIV command line, run with hetreg.

    python main.py --experiment_settings="exp_tag,7159,utkf,True,16000" \\
        --model_settings="vanilla_cnn,cutoffMSE" --noise_settings="True,binary_uniform" \\
        --params_settings="meanvar_avg,0.5,3000" --parameters="True,0.5,1,0.3,0"

Add ``--dry-run`` to print the resolved experiment without training; ``--help`` lists every
option. Positions, defaults and divergences from the original: ``docs/compat.md``.
"""

from __future__ import annotations

import sys

from hetreg.compat import cli_biv

if __name__ == "__main__":
    sys.exit(cli_biv(sys.argv[1:]))
