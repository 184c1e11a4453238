"""Counting categories and folding the rare ones: shared by profiles and comparisons.

``None`` marks a missing value; it is counted apart and never becomes a category. Folding
keeps the ``limit`` most frequent categories, ties broken by category name (ascending, by
Python string order), and sums the rest; the kept categories are returned most frequent first,
so a folded count dictionary has a deterministic order whatever the input order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

#: Bucket that receives the reference categories beyond ``max_categories``.
OTHER: str = "__other__"


def category_counts(values: Sequence[str | None]) -> tuple[dict[str, int], int]:
    """Count each category, and the missing values apart.

    Parameters
    ----------
    values : sequence of str or None
        Categories; ``None`` marks a missing value.

    Returns
    -------
    tuple
        ``(counts, missing)``: the count of every non-missing category, and the number of
        ``None`` values.

    Examples
    --------
    >>> category_counts(["a", None, "b", "a"])
    ({'a': 2, 'b': 1}, 1)
    """
    counts = Counter(values)
    missing = counts.pop(None, 0)
    return {category: count for category, count in counts.items() if category is not None}, missing


def fold_rare(counts: Mapping[str, int], *, limit: int) -> tuple[dict[str, int], int, int]:
    """Keep the ``limit`` most frequent categories; sum the others.

    Parameters
    ----------
    counts : mapping of str to int
        Category counts.
    limit : int
        Number of categories to keep.

    Returns
    -------
    tuple
        ``(kept, folded_total, folded_categories)``: the kept counts, most frequent first (ties
        by name); the summed count of the others; how many categories were folded.

    Examples
    --------
    >>> fold_rare({"c": 1, "a": 5, "b": 1, "d": 3}, limit=2)
    ({'a': 5, 'd': 3}, 2, 2)
    >>> fold_rare({"b": 1, "a": 1}, limit=5)
    ({'a': 1, 'b': 1}, 0, 0)
    """
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:limit])
    folded = ranked[limit:]
    return kept, sum(count for _, count in folded), len(folded)
