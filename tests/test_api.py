import inspect

import contraction as ct


def test_public_names_exist_and_have_docstrings():
    for name in ct.__all__:
        obj = getattr(ct, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_all_is_sorted_and_unique():
    assert list(ct.__all__) == sorted(set(ct.__all__))


def test_public_functions_have_examples():
    """Records, warnings and errors aside, every public function shows an example (run as a doctest)."""
    for name in ct.__all__:
        obj = getattr(ct, name)
        if inspect.isfunction(obj):
            assert "Examples" in inspect.getdoc(obj), f"{name} has no Examples section"


def test_map_families_are_public():
    """Dense, low-rank and gradient families: every engine takes the first two alike."""
    for name in ("AffineMaps", "LowRankAffineMaps", "GradientMaps"):
        assert name in ct.__all__ and inspect.isclass(getattr(ct, name))
