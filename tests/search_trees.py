"""Hypothesis strategy shared by the search equivalence tests: random AND/OR/NOT trees of
the store's search keys (mailhost/store/search.py), over leaves the caller draws."""

from __future__ import annotations

from hypothesis import strategies as st

from mailhost.store.search import And, Not, Or


def trees_of(leaves: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(Not),
            st.builds(Or, inner, inner),
            st.lists(inner, max_size=4).map(lambda ks: And(tuple(ks))),
        ),
        max_leaves=10,
    )
