"""Write the toy column files of this example (deterministic; the committed files came from it).

Each line is ``word  coarse_pos  fine_pos  place``; a blank line ends a sentence. Two tag sets for one
word (two POS tasks of one kind) and place names as IOB1 spans (``I-LOC``, ``B-LOC`` only where two
places touch). ``other/`` holds a second corpus with its own POS tags for the task ``other_pos``.
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAMES = ["Alice", "Bob", "Chen", "Dana", "Emil", "Farah"]
PLACES = [["Paris"], ["New", "York"], ["Lagos"], ["Rio", "de", "Janeiro"], ["Oslo"], ["Cape", "Town"]]
VERBS = [("visited", "VBD"), ("left", "VBD"), ("loves", "VBZ"), ("sees", "VBZ")]
TIMES = [("on", "Monday"), ("in", "June"), ("last", "year")]


def sentence(rng: random.Random) -> list[tuple[str, str, str, str]]:
    rows = [(rng.choice(NAMES), "NOUN", "NNP", "O")]
    verb, fine = rng.choice(VERBS)
    rows.append((verb, "VERB", fine, "O"))
    for k in range(rng.choice([1, 1, 2])):
        if k:
            rows.append(("and", "CONJ", "CC", "O"))
        place = rng.choice(PLACES)
        rows += [(w, "NOUN", "NNP", "I-LOC") for w in place]
    if rng.random() < 0.6:
        a, b = rng.choice(TIMES)
        rows += [
            (a, "ADP" if a != "last" else "ADJ", "IN" if a != "last" else "JJ", "O"),
            (b, "NOUN", "NN", "O"),
        ]
    rows.append((".", ".", ".", "O"))
    return rows


def write(path: Path, sentences, columns) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in sentences:
        lines += [" ".join(row[c] for c in columns) for row in s] + [""]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    rng = random.Random(0)
    for split, n in (("train", 240), ("dev", 60), ("test", 60)):
        sents = [sentence(rng) for _ in range(n)]
        write(HERE / f"{split}.txt", sents, (0, 1, 2, 3))
        write(HERE / "other" / f"{split}.txt", [sentence(rng) for _ in range(n // 2)], (0, 2))


if __name__ == "__main__":
    main()
