"""Batch sequences: i.i.d. with replacement, random reshuffling, fixed.

Every chain draws from its own stream, spawned from one seed
(``SeedSequence.spawn``), so chain ``i`` is the same whatever the number of
chains requested. Sizes are checked before anything is built: at most
:data:`MAX_CHAINS` chains, :data:`MAX_BATCHES` batches and 1 GiB of indices
(:data:`contraction.core._validation.MAX_OUTPUT_BYTES`); the chains' streams
are spawned and used a chunk at a time.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_generator, check_choice, check_int, check_nonnegative_int, check_output_size, check_probs

__all__ = ["MAX_BATCHES", "MAX_CHAINS", "chain_generators", "draw_batches", "sample_batches"]

SCHEMES = ("iid", "reshuffle")
# Most chains (one stream each) and batches one call accepts.
MAX_CHAINS = 10**6
MAX_BATCHES = 10**7
# Streams spawned and used at a time (the same streams as spawning them all at once).
_CHUNK_CHAINS = 4096


def chain_generators(n_chains, rng=None) -> list[np.random.Generator]:
    """Independent generators, one per chain, spawned from ``rng``.

    Generator ``i`` is the ``i``-th stream spawned from ``rng``
    (``Generator.spawn``), so it depends only on the seed and ``i``.

    Parameters
    ----------
    n_chains : int
        Number of generators, in ``[1, MAX_CHAINS]`` (``10**6``).
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
        Anything :func:`numpy.random.default_rng` accepts. A SeedSequence is
        copied (passing it twice gives the same generators); a Generator is
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
    n_chains = check_int(n_chains, "n_chains", 1, MAX_CHAINS)
    return as_generator(rng).spawn(n_chains)


def draw_batches(gens, n_batches: int, n_steps: int, scheme: str = "iid", probs=None, out=None) -> np.ndarray:
    """Batch sequences of ``len(gens)`` chains, chain ``c`` drawn from ``gens[c]`` (arguments already valid).

    One vectorized draw per chain (each chain owns its stream); no loop over
    steps. For ``"iid"`` the draws are those of ``g.choice(m, n_steps, p=p)``
    (uniforms looked up in the cumulative probabilities), the lookup done
    once for all chains. ``out`` (len(gens), n_steps), when given, receives them.
    """
    m = n_batches
    if out is None:
        out = np.empty((len(gens), n_steps), dtype=np.int64)
    if n_steps == 0 or len(gens) == 0:
        return out
    if scheme == "iid":
        cdf = check_probs(probs, m).cumsum()  # as Generator.choice does with p
        cdf /= cdf[-1]
        uniforms = np.empty((len(gens), n_steps))
        for c, g in enumerate(gens):
            g.random(out=uniforms[c])
        out[...] = cdf.searchsorted(uniforms, side="right")
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
        Number of batches ``m``; indices are ``0, …, m − 1``. At most ``MAX_BATCHES`` (``10**7``).
    n_steps : int
        Length ``n`` of each sequence (0 allowed).
    n_chains : int, default 1
        Number of independent chains, at most ``MAX_CHAINS`` (``10**6``);
        ``n_chains · n_steps`` indices take at most 1 GiB.
    scheme : {"iid", "reshuffle"}
        ``"iid"``: independent draws with probabilities ``probs``.
        ``"reshuffle"``: each epoch of ``m`` steps is a fresh uniform
        permutation of all batches (the last epoch is cut at ``n_steps``).
        A fixed sequence needs no sampling: pass an integer array to the
        iteration functions.
    probs : array_like, shape (m,), optional
        Only for ``"iid"``; uniform when omitted.
    rng : None, int, SeedSequence, BitGenerator or Generator, optional
        Source of randomness; chain ``i`` draws from the ``i``-th stream
        spawned from it, so it is the same whatever ``n_chains`` is. A
        SeedSequence is copied, never consumed.

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
    m = check_int(n_batches, "n_batches", 1, MAX_BATCHES)
    n = check_nonnegative_int(n_steps, "n_steps")
    n_chains = check_int(n_chains, "n_chains", 1, MAX_CHAINS)
    scheme = check_choice(scheme, "scheme", SCHEMES)
    check_output_size((n_chains, n), "n_chains" if n_chains > n else "n_steps",
                      what="batch indices (n_chains x n_steps)")
    if scheme == "reshuffle":
        if probs is not None:
            raise ValueError("probs: random reshuffling uses every batch once per epoch; got probs")
        check_output_size((-(-n // m) * m,), "n_batches", what="the epochs of one chain")
    check_probs(probs, m)
    gen = as_generator(rng)
    out = np.empty((n_chains, n), dtype=np.int64)
    for start in range(0, n_chains, _CHUNK_CHAINS):  # the same streams as spawning all at once
        stop = min(n_chains, start + _CHUNK_CHAINS)
        draw_batches(gen.spawn(stop - start), m, n, scheme, probs, out=out[start:stop])
    return out
