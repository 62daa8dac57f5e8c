"""Span tag schemes IOB1, BIO2 (= IOB2) and BIOES, converted both ways through BIO2.

IOB1 (CoNLL-2003 as released) starts a span with I- and writes B- only where a span directly follows
another of the same type; BIO2 starts every span with B-; BIOES also marks span ends (E-) and
single-token spans (S-). Conversions are exact inverses on valid sequences.
"""

from __future__ import annotations

SCHEMES = ("iob1", "bio2", "iob2", "bioes")
_PREFIXES = {"iob1": "BI", "bio2": "BI", "bioes": "BIES"}


def _scheme(name: str) -> str:
    s = name.lower()
    s = "bio2" if s == "iob2" else s
    if s not in _PREFIXES:
        raise ValueError(f"unknown tag scheme '{name}'; valid: {sorted(SCHEMES)}")
    return s


def _split(tag: str) -> tuple[str, str]:
    """('O', '') or (prefix, type); the tag must already be known valid."""
    return ("O", "") if tag == "O" else (tag[0], tag[2:])


def invalid_tag(tags: list[str], scheme: str) -> int | None:
    """Position of the first tag that is neither ``O`` nor ``<prefix>-<type>`` of ``scheme``, else None."""
    prefixes = _PREFIXES[_scheme(scheme)]
    for i, tag in enumerate(tags):
        if tag != "O" and not (len(tag) > 2 and tag[0] in prefixes and tag[1] == "-"):
            return i
    return None


def _iob1_to_bio2(tags: list[str]) -> list[str]:
    out, prev = [], ("O", "")
    for tag in tags:
        p, label = _split(tag)
        if p == "I" and (prev[0] == "O" or prev[1] != label):
            p = "B"
        out.append(tag if p == "O" else f"{p}-{label}")
        prev = (p, label)
    return out


def _bio2_to_iob1(tags: list[str]) -> list[str]:
    out, prev = [], ("O", "")
    for tag in tags:
        p, label = _split(tag)
        if p == "B":
            # IOB1 writes B only where a span directly follows another span of the same type
            p = "B" if prev[0] != "O" and prev[1] == label else "I"
        out.append(tag if p == "O" else f"{p}-{label}")
        prev = _split(tag)
    return out


def _bio2_to_bioes(tags: list[str]) -> list[str]:
    out = []
    for i, tag in enumerate(tags):
        p, label = _split(tag)
        nxt_p, nxt_label = _split(tags[i + 1]) if i + 1 < len(tags) else ("O", "")
        continues = nxt_p == "I" and nxt_label == label
        if p == "B":
            out.append(f"B-{label}" if continues else f"S-{label}")
        elif p == "I":
            out.append(f"I-{label}" if continues else f"E-{label}")
        else:
            out.append("O")
    return out


def _bioes_to_bio2(tags: list[str]) -> list[str]:
    mapping = {"B": "B", "S": "B", "I": "I", "E": "I"}
    return ["O" if tag == "O" else f"{mapping[tag[0]]}-{tag[2:]}" for tag in tags]


def detect_iob1(tags: list[str]) -> bool:
    """True when some span starts with I- (after O or another type): the tags are IOB1, not BIO2."""
    prev = ("O", "")
    for tag in tags:
        p, label = _split(tag)
        if p == "I" and (prev[0] == "O" or prev[1] != label):
            return True
        prev = (p, label)
    return False


def convert_tags(tags: list[str], src: str, dst: str) -> list[str]:
    """One sentence's tags from scheme ``src`` to ``dst`` (``iob1``, ``bio2``/``iob2``, ``bioes``).

    Raises ValueError on an unknown scheme or a tag that is not valid in ``src``.
    """
    src, dst = _scheme(src), _scheme(dst)
    bad = invalid_tag(tags, src)
    if bad is not None:
        raise ValueError(f"tag {bad + 1} '{tags[bad]}' is not a valid {src} tag")
    bio2 = {"iob1": _iob1_to_bio2, "bioes": _bioes_to_bio2}.get(src, list)(tags)
    return {"iob1": _bio2_to_iob1, "bioes": _bio2_to_bioes}.get(dst, list)(bio2)


def detect_scheme(sentences: list[list[str]]) -> str:
    """The scheme of a file's tag sequences (decide over the whole file, not per sentence).

    ``bioes`` if any tag has an E- or S- prefix, else ``iob1`` if some span starts with I-, else ``bio2``.
    A file without spans reads as bio2, which every scheme agrees with.
    """
    if any(t[:2] in ("E-", "S-") for tags in sentences for t in tags):
        return "bioes"
    return "iob1" if any(detect_iob1(tags) for tags in sentences) else "bio2"


def broken_span(tags: list[str], scheme: str) -> tuple[int, str] | None:
    """(position, why) of the first tag that breaks ``scheme``'s span rules, else None.

    Tags must already pass :func:`invalid_tag`. BIO2: I-X continues a B-X or I-X. BIOES: I-X and E-X
    continue a B-X or I-X, and a B-X or I-X is followed by I-X or E-X. IOB1 has no rule beyond prefixes
    (a B-X after O is read as a span start, as the CoNLL evaluation script does).
    """
    s = _scheme(scheme)
    if s == "iob1":
        return None
    prev = ("O", "")
    for i, tag in enumerate(tags):
        p, label = _split(tag)
        open_span = prev[0] in ("B", "I")
        if p in ("I", "E") and not (open_span and prev[1] == label):
            return i, f"{tag} does not continue a {label} span"
        if s == "bioes" and open_span and not (p in ("I", "E") and prev[1] == label):
            return i - 1, f"{tags[i - 1]} is not followed by I-{prev[1]} or E-{prev[1]}"
        prev = (p, label)
    if s == "bioes" and prev[0] in ("B", "I"):
        return len(tags) - 1, f"{tags[-1]} ends the sentence inside a span"
    return None
