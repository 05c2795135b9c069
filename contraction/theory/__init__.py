"""Theory layer: diagnostics, certified backward limits, stationary laws, law tests, examples.

Builds on :mod:`contraction.core` only.
"""
