"""Core layer: affine (dense and low-rank) and gradient map families, models, batch sampling, iterates.

Nothing here imports from another layer of :mod:`contraction`.
"""
