"""Batch sequences: i.i.d. with replacement, random reshuffling, fixed.

Every chain draws from its own stream, spawned from one seed
(``SeedSequence.spawn``), so chain ``i`` is the same whatever the number of
chains requested.
"""

from __future__ import annotations

import numpy as np

from ._validation import check_positive_int, check_probs, describe

__all__ = ["sample_batches", "chain_generators"]

SCHEMES = ("iid", "reshuffle")


def chain_generators(n_chains: int, rng=None) -> list[np.random.Generator]:
    """Independent generators, one per chain, spawned from ``rng``.

    ``rng`` is anything :func:`numpy.random.default_rng` accepts. Generator
    ``i`` depends only on the seed and ``i``.

    Examples
    --------
    >>> a = chain_generators(2, rng=5)[1].random()
    >>> b = chain_generators(6, rng=5)[1].random()
    >>> a == b
    True
    """
    n_chains = check_positive_int(n_chains, "n_chains")
    if isinstance(rng, np.random.Generator):
        return rng.spawn(n_chains)
    if isinstance(rng, np.random.SeedSequence):
        seq = rng
    else:
        try:
            seq = np.random.SeedSequence(rng)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"rng: expected None, an int seed, a SeedSequence or a Generator, got {describe(rng)}"
            ) from exc
    return [np.random.default_rng(s) for s in seq.spawn(n_chains)]


def sample_batches(n_batches, n_steps, n_chains=1, scheme="iid", probs=None, rng=None) -> np.ndarray:
    """Draw batch sequences ``ξ_1, …, ξ_n`` for several independent chains.

    Parameters
    ----------
    n_batches : int
        Number of batches ``m``; indices are ``0, …, m − 1``.
    n_steps : int
        Length ``n`` of each sequence (0 allowed).
    n_chains : int, default 1
    scheme : {"iid", "reshuffle"}
        ``"iid"``: independent draws with probabilities ``probs``.
        ``"reshuffle"``: each epoch of ``m`` steps is a fresh uniform
        permutation of all batches (the last epoch is cut at ``n_steps``).
        A fixed sequence needs no sampling: pass an integer array to the
        iteration functions.
    probs : array_like, shape (m,), optional
        Only for ``"iid"``; uniform when omitted.
    rng : None, int, SeedSequence or Generator
        Seed. Chain ``i`` is the same whatever ``n_chains`` is.

    Returns
    -------
    ndarray of int64, shape (n_chains, n_steps)

    Examples
    --------
    >>> import numpy as np
    >>> a = sample_batches(4, 10, n_chains=3, rng=7)
    >>> b = sample_batches(4, 10, n_chains=5, rng=7)
    >>> bool(np.array_equal(a, b[:3]))
    True
    >>> idx = sample_batches(3, 6, scheme="reshuffle", rng=0)
    >>> sorted(idx[0, :3].tolist()) == [0, 1, 2] and sorted(idx[0, 3:].tolist()) == [0, 1, 2]
    True
    """
    m = check_positive_int(n_batches, "n_batches")
    n = check_positive_int(n_steps, "n_steps", minimum=0)
    n_chains = check_positive_int(n_chains, "n_chains")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    if scheme == "reshuffle" and probs is not None:
        raise ValueError("probs: random reshuffling uses every batch once per epoch; got probs")
    p = check_probs(probs, m)
    gens = chain_generators(n_chains, rng)
    out = np.empty((n_chains, n), dtype=np.int64)
    if n == 0:
        return out
    # One vectorized draw per chain (each chain owns its stream); no loop over steps.
    if scheme == "iid":
        for c, g in enumerate(gens):
            out[c] = g.choice(m, size=n, p=p)
    else:
        n_epochs = -(-n // m)
        base = np.tile(np.arange(m), (n_epochs, 1))
        for c, g in enumerate(gens):
            out[c] = g.permuted(base, axis=1).ravel()[:n]
    return out
