"""The row each row of a table is compared with (its Δ, Δm% and paired differences).

Against the single task, a matched-budget row (``hard_matched``, ...: the warmup's epochs more) is
compared with the single task at the same budget, ``single_matched``; where that did not run, with
``single``, marked as not budget-matched. Any other reference (``paper.reference``) is every row's.
"""

from __future__ import annotations

from collections.abc import Collection

from sparseshare.experiments.systems.registry import label

MATCHED_SUFFIX = "_matched"
UNMATCHED_MARK = "‡"


def reference_of(name: str, present: Collection[str], reference: str = "single") -> tuple[str | None, bool]:
    """(the system ``name`` is compared with, whether the two had the same budget); (None, True) for a
    reference row itself, or when its reference is not among ``present``."""
    if is_reference(name, reference):
        return None, True
    if reference != "single":
        return (reference, True) if reference in present else (None, True)
    if name.endswith(MATCHED_SUFFIX):
        if reference + MATCHED_SUFFIX in present:
            return reference + MATCHED_SUFFIX, True
        return (reference, False) if reference in present else (None, True)
    return (reference, True) if reference in present else (None, True)


def is_reference(name: str, reference: str = "single") -> bool:
    """Whether ``name`` is a reference row (its Δ is '-')."""
    return name == reference or (reference == "single" and name == reference + MATCHED_SUFFIX)


def references_note(names: list[str], present: Collection[str], reference: str = "single") -> str:
    """One line: each row's reference, and what the mark for a comparison across budgets means."""
    by_ref: dict[str, list[str]] = {}
    unmatched = False
    for n in names:
        ref, same = reference_of(n, present, reference)
        if ref is not None:
            by_ref.setdefault(ref, []).append(n)
            unmatched = unmatched or not same
    if not by_ref:
        return ""
    matched = by_ref.pop(reference + MATCHED_SUFFIX, [])
    same = label(reference + MATCHED_SUFFIX)
    if not matched:
        text = f"Each row against {label(reference)}."
    elif by_ref:
        rows = ", ".join(label(n) for n in matched)
        text = f"Each row against {label(reference)}, except {rows} against {same} (the same budget)."
    else:
        text = f"Each row against {same} (the same budget)."
    if unmatched:
        text += (
            f" {UNMATCHED_MARK}: a matched-budget row against {label(reference)}, which trained for fewer "
            f"epochs ({label(reference + MATCHED_SUFFIX)} did not run): not budget-matched."
        )
    return text
