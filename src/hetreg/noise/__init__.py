"""Label-noise simulation: distributions of the noise variance, noisy labels, normalisation, summaries.

Units: distributions and variances are in squared raw label units (noise is added before any
normalisation, as in the BIV experiments); :func:`normalize_noise` moves labels and variances to
z-scored units (variances, ε and thresholds scale by :math:`1/s_y^2`).
"""

from hetreg.noise.describe import describe_distribution, format_description
from hetreg.noise.distributions import (
    Constant,
    Gamma,
    Mixture,
    Uniform,
    VarianceDistribution,
    binary_uniform,
    distribution_from_dict,
    gamma_from_mean_var,
    gamma_from_shape_rate,
    mixture_mean_target,
    uniform_from_bounds,
    uniform_from_mean_var,
    uniform_max_heteroscedastic,
    uniform_max_variance,
)
from hetreg.noise.labels import NoisyLabels, add_label_noise, disturb_variance, normalize_noise

__all__ = [
    "VarianceDistribution",
    "Uniform",
    "Constant",
    "Gamma",
    "Mixture",
    "distribution_from_dict",
    "uniform_from_bounds",
    "uniform_from_mean_var",
    "uniform_max_variance",
    "uniform_max_heteroscedastic",
    "binary_uniform",
    "mixture_mean_target",
    "gamma_from_shape_rate",
    "gamma_from_mean_var",
    "NoisyLabels",
    "add_label_noise",
    "disturb_variance",
    "normalize_noise",
    "describe_distribution",
    "format_description",
]
