"""contraction: how the order of composition of SGD updates changes convergence.

Forward SGD composes batch maps as ``T_{ξ_n} ∘ … ∘ T_{ξ_1}``; backward SGD as
``T_{ξ_1} ∘ … ∘ T_{ξ_n}``. This package computes both, exactly where the maps
are affine, and checks the theorems that relate them.
"""

import importlib as _importlib
import warnings as _warnings

from .approximations import (
    ApproximateIterates,
    bracket_corrected_iterates,
    sliding_backward_iterates,
    windowed_backward_iterates,
)
from .core._fitting import loglog_slope
from .core._validation import ContractionWarning, DivergenceError, NonConvergenceWarning
from .core.iterates import backward_iterates, forward_iterates
from .core.lowrank import LowRankAffineMaps
from .core.maps import AffineMap, AffineMaps, GradientMaps, compose_affine
from .core.models import LinearRegressionModel, QuadraticModel
from .core.regression_data import (
    digits_random_features,
    load_diabetes_regression,
    load_digits_regression,
    power_law_regression,
)
from .core.sampling import chain_generators, sample_batches
from .theory.diagnostics import (
    LyapunovResult,
    StableLearningRates,
    contraction_constant,
    lyapunov_exponent,
    max_stable_lr,
    mean_square_radius,
    tail_index,
)
from .theory.examples import (
    gaussian_least_squares_1d,
    gaussian_lyapunov_1d,
    gaussian_lyapunov_threshold,
    log_cosh_maps,
    mean_estimation,
    two_point_cdf,
    two_point_quadratic,
)
from .theory.fixed_point import FixedPointResult, backward_fixed_point
from .theory.laws import LawComparison, compare_laws, hill_estimator, ks_against_cdf, wasserstein_1d
from .theory.moments import (
    MomentsAtStep,
    StationaryLawError,
    StationaryMoments,
    backward_distance_squared,
    moments_at_step,
    stationary_mean_squared_increment,
    stationary_moments,
)
from .theory.ou import (
    FluctuationDissipation,
    OUCovariance,
    batch_gradient_covariance,
    fluctuation_dissipation,
    fluctuation_dissipation_exact,
    mean_square_threshold,
    ou_covariance,
)
from .theory.samples import StationarySamples, stationary_samples
from .theory.tails import TailIndexResult

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("lie", "nn", "plotting", "sweeps")
# Public names of the sweeps, which run the network experiment: loaded on first use, like the networks.
_LAZY_NAMES = {"SweepResult": "sweeps", "SweepSpec": "sweeps", "sweep": "sweeps"}

# Old public names: still importable, with a DeprecationWarning naming the new one.
_DEPRECATED = {
    "stationary_step_size": (stationary_mean_squared_increment, "stationary_mean_squared_increment"),
}


def __getattr__(name):
    """Import the heavier submodules (sympy, the networks, matplotlib, sweeps) on first use; warn on old names."""
    if name in _LAZY_SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        return getattr(_importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
    if name in _DEPRECATED:
        obj, new = _DEPRECATED[name]
        _warnings.warn(f"contraction.{name} is deprecated; use contraction.{new}", DeprecationWarning, stacklevel=2)
        return obj
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AffineMap",
    "AffineMaps",
    "ApproximateIterates",
    "ContractionWarning",
    "DivergenceError",
    "FixedPointResult",
    "FluctuationDissipation",
    "GradientMaps",
    "LawComparison",
    "LinearRegressionModel",
    "LowRankAffineMaps",
    "LyapunovResult",
    "MomentsAtStep",
    "NonConvergenceWarning",
    "OUCovariance",
    "QuadraticModel",
    "StableLearningRates",
    "StationaryLawError",
    "StationaryMoments",
    "StationarySamples",
    "SweepResult",
    "SweepSpec",
    "TailIndexResult",
    "backward_distance_squared",
    "backward_fixed_point",
    "backward_iterates",
    "batch_gradient_covariance",
    "bracket_corrected_iterates",
    "chain_generators",
    "compare_laws",
    "compose_affine",
    "contraction_constant",
    "digits_random_features",
    "fluctuation_dissipation",
    "fluctuation_dissipation_exact",
    "forward_iterates",
    "gaussian_least_squares_1d",
    "gaussian_lyapunov_1d",
    "gaussian_lyapunov_threshold",
    "hill_estimator",
    "ks_against_cdf",
    "load_diabetes_regression",
    "load_digits_regression",
    "log_cosh_maps",
    "loglog_slope",
    "lyapunov_exponent",
    "max_stable_lr",
    "mean_estimation",
    "mean_square_radius",
    "mean_square_threshold",
    "moments_at_step",
    "ou_covariance",
    "power_law_regression",
    "sample_batches",
    "sliding_backward_iterates",
    "stationary_mean_squared_increment",
    "stationary_moments",
    "stationary_samples",
    "sweep",
    "tail_index",
    "two_point_cdf",
    "two_point_quadratic",
    "wasserstein_1d",
    "windowed_backward_iterates",
]
