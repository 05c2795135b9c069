import inspect

import contraction as ct


def test_public_names_exist_and_have_docstrings():
    for name in ct.__all__:
        obj = getattr(ct, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"


def test_all_is_sorted_and_unique():
    assert list(ct.__all__) == sorted(set(ct.__all__))
