"""Batch sequences: i.i.d. with replacement, random reshuffling, fixed.

Every chain draws from its own stream, spawned from one seed
(``SeedSequence.spawn``), so chain ``i`` is the same whatever the number of
chains requested.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_generator, check_choice, check_nonnegative_int, check_positive_int, check_probs

__all__ = ["chain_generators", "draw_batches", "sample_batches"]

SCHEMES = ("iid", "reshuffle")


def chain_generators(n_chains, rng=None) -> list[np.random.Generator]:
    """Independent generators, one per chain, spawned from ``rng``.

    Generator ``i`` is the ``i``-th stream spawned from ``rng``
    (``Generator.spawn``), so it depends only on the seed and ``i``.

    Parameters
    ----------
    n_chains : int
        Number of generators, ``>= 1``.
    rng : None, int, SeedSequence or Generator, optional
        Anything :func:`numpy.random.default_rng` accepts. A Generator is
        spawned from (its state is not advanced, its spawn counter is).

    Returns
    -------
    list of numpy.random.Generator
        ``n_chains`` independent generators.

    Examples
    --------
    >>> a = chain_generators(2, rng=5)[1].random()
    >>> b = chain_generators(6, rng=5)[1].random()
    >>> a == b
    True
    """
    n_chains = check_positive_int(n_chains, "n_chains")
    return as_generator(rng).spawn(n_chains)


def draw_batches(gens, n_batches: int, n_steps: int, scheme: str = "iid", probs=None) -> np.ndarray:
    """Batch sequences of ``len(gens)`` chains, chain ``c`` drawn from ``gens[c]`` (arguments already valid).

    One vectorized draw per chain (each chain owns its stream); no loop over steps.
    """
    m = n_batches
    out = np.empty((len(gens), n_steps), dtype=np.int64)
    if n_steps == 0:
        return out
    if scheme == "iid":
        p = check_probs(probs, m)
        for c, g in enumerate(gens):
            out[c] = g.choice(m, size=n_steps, p=p)
    else:
        n_epochs = -(-n_steps // m)
        base = np.tile(np.arange(m), (n_epochs, 1))
        for c, g in enumerate(gens):
            out[c] = g.permuted(base, axis=1).ravel()[:n_steps]
    return out


def sample_batches(n_batches, n_steps, n_chains=1, scheme="iid", probs=None, rng=None) -> np.ndarray:
    """Draw batch sequences ``ξ_1, …, ξ_n`` for several independent chains.

    Parameters
    ----------
    n_batches : int
        Number of batches ``m``; indices are ``0, …, m − 1``.
    n_steps : int
        Length ``n`` of each sequence (0 allowed).
    n_chains : int, default 1
        Number of independent chains.
    scheme : {"iid", "reshuffle"}
        ``"iid"``: independent draws with probabilities ``probs``.
        ``"reshuffle"``: each epoch of ``m`` steps is a fresh uniform
        permutation of all batches (the last epoch is cut at ``n_steps``).
        A fixed sequence needs no sampling: pass an integer array to the
        iteration functions.
    probs : array_like, shape (m,), optional
        Only for ``"iid"``; uniform when omitted.
    rng : None, int, SeedSequence or Generator, optional
        Source of randomness; chain ``i`` draws from the ``i``-th stream
        spawned from it, so it is the same whatever ``n_chains`` is.

    Returns
    -------
    ndarray of int64, shape (n_chains, n_steps)
        Row ``c`` is the batch sequence of chain ``c``.

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
    n = check_nonnegative_int(n_steps, "n_steps")
    n_chains = check_positive_int(n_chains, "n_chains")
    scheme = check_choice(scheme, "scheme", SCHEMES)
    if scheme == "reshuffle" and probs is not None:
        raise ValueError("probs: random reshuffling uses every batch once per epoch; got probs")
    check_probs(probs, m)
    return draw_batches(chain_generators(n_chains, rng), m, n, scheme, probs)
