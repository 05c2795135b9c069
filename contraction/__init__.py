"""contraction: how the order of composition of SGD updates changes convergence.

Forward SGD composes batch maps as ``T_{ξ_n} ∘ … ∘ T_{ξ_1}``; backward SGD as
``T_{ξ_1} ∘ … ∘ T_{ξ_n}``. This package computes both, exactly where the maps
are affine, and checks the theorems that relate them.
"""

from ._validation import ContractionWarning, DivergenceError, NonConvergenceWarning
from .iterates import backward_iterates, forward_iterates
from .maps import AffineMaps, GradientMaps, compose_affine
from .models import LinearRegressionModel, QuadraticModel
from .sampling import chain_generators, sample_batches

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("lie", "nn", "plotting")


def __getattr__(name):
    """Import the heavier submodules (sympy, the networks, matplotlib) on first use."""
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AffineMaps",
    "ContractionWarning",
    "DivergenceError",
    "GradientMaps",
    "LinearRegressionModel",
    "NonConvergenceWarning",
    "QuadraticModel",
    "backward_iterates",
    "chain_generators",
    "compose_affine",
    "forward_iterates",
    "sample_batches",
]
