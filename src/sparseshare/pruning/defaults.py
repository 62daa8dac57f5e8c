"""Which parameters are prunable by default (name globs; pruning/prunable.py applies them), importing no
torch: the search's settings name them."""

DEFAULT_INCLUDE: tuple[str, ...] = ("*",)
DEFAULT_EXCLUDE: tuple[str, ...] = ("*embed*", "*bias*", "heads.*", "towers.*", "*crf*", "*transitions*")
