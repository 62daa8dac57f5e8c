"""Span tag schemes IOB1, BIO2 (= IOB2) and BIOES, converted both ways through BIO2."""

from __future__ import annotations

SCHEMES = ("iob1", "bio2", "iob2", "bioes")


def _split(tag: str) -> tuple[str, str]:
    if tag == "O" or "-" not in tag:
        return "O", ""
    prefix, label = tag.split("-", 1)
    return prefix, label


def _iob1_to_bio2(tags: list[str]) -> list[str]:
    out, prev = [], "O"
    for tag in tags:
        p, label = _split(tag)
        if p == "I":
            pp, plabel = _split(prev)
            if pp == "O" or plabel != label:
                p = "B"
        out.append("O" if p == "O" else f"{p}-{label}")
        prev = tag
    return out


def _bio2_to_iob1(tags: list[str]) -> list[str]:
    out = []
    for i, tag in enumerate(tags):
        p, label = _split(tag)
        if p == "B":
            prev_p, prev_label = _split(tags[i - 1]) if i else ("O", "")
            # IOB1 writes B only where a span directly follows another span of the same type
            p = "B" if prev_p != "O" and prev_label == label else "I"
        out.append("O" if p == "O" else f"{p}-{label}")
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
    out = []
    for tag in tags:
        p, label = _split(tag)
        if p in ("B", "S"):
            out.append(f"B-{label}")
        elif p in ("I", "E"):
            out.append(f"I-{label}")
        else:
            out.append("O")
    return out


def detect_iob1(tags: list[str]) -> bool:
    """True when some span starts with I- (after O or another type): the tags are IOB1, not BIO2."""
    prev = "O"
    for tag in tags:
        p, label = _split(tag)
        if p == "I":
            pp, plabel = _split(prev)
            if pp == "O" or plabel != label:
                return True
        prev = tag
    return False


def convert_tags(tags: list[str], src: str, dst: str) -> list[str]:
    """Convert one sentence's tags from scheme ``src`` to ``dst``."""
    src, dst = src.lower().replace("iob2", "bio2"), dst.lower().replace("iob2", "bio2")
    for s in (src, dst):
        if s not in SCHEMES:
            raise ValueError(f"unknown tag scheme '{s}'; valid: ['bio2', 'bioes', 'iob1']")
    bio2 = {"iob1": _iob1_to_bio2, "bioes": _bioes_to_bio2}.get(src, list)(tags)
    return {"iob1": _bio2_to_iob1, "bioes": _bio2_to_bioes}.get(dst, list)(bio2)
