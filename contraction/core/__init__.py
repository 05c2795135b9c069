"""Core layer: affine and gradient map families, models, batch sampling, iterates.

Nothing here imports from another layer of :mod:`contraction`.
"""
