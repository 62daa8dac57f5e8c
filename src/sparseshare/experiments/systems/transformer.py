"""The base network over a transformer (a config's ``model.transformer``; models/hf_tagger.py): its recipe
keywords, and what a run gives it when it builds (a pretrained tokenizer's sub-words per vocabulary
word, the pretrained weights), read once per run.

The systems built from the base network alone run over it (:data:`TRANSFORMER_SYSTEMS`, checked when the
config loads): the others are made of the BiLSTM's layers (cross-stitch, hierarchical), of their own
embedding (MMoE, CGC, PLE, PBFS per token), or resize the BiLSTM (the ``*_matched`` baselines).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch

from sparseshare.errors import ConfigError
from sparseshare.experiments.config.sections import TransformerConfig
from sparseshare.models.hf import require_transformers

logger = logging.getLogger("sparseshare")

NETWORK = "transformer_tagger"
TRANSFORMER_SYSTEMS = (
    "single", "single_subnet", "single_warm", "hard",
    "sparse", "sparse_random", "sparse_permuted", "sparse_reinit",
)  # fmt: skip


def check_pretrained(t: TransformerConfig) -> None:
    """A one-line ConfigError unless ``t.pretrained`` names a model whose config loads (read alone:
    cheap, before the run reads its data and loads the weights)."""
    transformers = require_transformers()
    try:
        transformers.AutoConfig.from_pretrained(t.pretrained)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(_cannot_load(t, e)) from None


def _cannot_load(t: TransformerConfig, e: BaseException) -> str:
    why = (str(e).strip().splitlines() or [""])[0]
    return f"'model.transformer.pretrained': cannot load '{t.pretrained}' ({type(e).__name__}: {why:.160})"


def transformer_base(
    t: TransformerConfig, words: list[str], dropout: float, decoder: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the recipe's keywords but ``n_tags``, the build-time inputs) for the run's vocabulary ``words``."""
    transformers = require_transformers()
    if t.pretrained is None:
        s = t.sizes()
        config = transformers.BertConfig(
            vocab_size=len(words), hidden_size=s["hidden"], num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"], intermediate_size=s["intermediate"],
            max_position_embeddings=s["max_positions"], hidden_dropout_prob=t.dropout,
            attention_probs_dropout_prob=t.dropout, pad_token_id=0,
        )  # fmt: skip
        specials = {"cls": None, "sep": None, "pad": 0}  # one token per word, the vocabulary's own ids
        return _kwargs(config, words, 1, specials, dropout, decoder), {}
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # the run's own log says what it loads
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(t.pretrained)
        model = transformers.AutoModel.from_pretrained(t.pretrained)
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(_cannot_load(t, e)) from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    logger.info("model.transformer: %s (%s, %s parameters)", t.pretrained, type(model).__name__,
                f"{sum(p.numel() for p in model.parameters()):,}")  # fmt: skip
    config = model.config
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        if hasattr(config, key):
            setattr(config, key, t.dropout)
    if getattr(tokenizer, "do_lower_case", None) is False and words == [w.lower() for w in words]:
        logger.warning(
            "model.transformer: '%s' is cased and the words are lower-cased (data.lower_words): "
            "set data.lower_words: false to give it the words as written",
            t.pretrained,
        )
    pieces, lengths = piece_table(tokenizer, words, t.max_pieces)
    specials = {
        "cls": tokenizer.cls_token_id,
        "sep": tokenizer.sep_token_id,
        "pad": tokenizer.pad_token_id or 0,
    }
    weights = {k: v.detach() for k, v in model.state_dict().items()}  # the loaded model is dropped: no copy
    kwargs = _kwargs(config, words, t.max_pieces, specials, dropout, decoder)
    return kwargs, {"pieces": (pieces, lengths), "weights": weights}


def _kwargs(config, words, max_pieces, specials, dropout, decoder) -> dict[str, Any]:
    hf_config = json.loads(config.to_json_string(use_diff=False))  # plain JSON: a recipe holds it
    for key in ("_name_or_path", "transformers_version", "architectures"):
        hf_config.pop(key, None)
    return {"n_words": len(words), "hf_config": hf_config, "max_pieces": max_pieces,
            "specials": specials, "dropout": dropout, "decoder": decoder}  # fmt: skip


def piece_table(tokenizer, words: list[str], max_pieces: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each vocabulary word's first ``max_pieces`` sub-word ids (``[V, K]``) and their count (``[V]``);
    the padding word is the pad token, a word the tokenizer gives nothing for its unknown token."""
    from sparseshare.data.sequence import PAD, UNK

    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    pad = tokenizer.pad_token_id or 0
    encoded = tokenizer(words, add_special_tokens=False)["input_ids"]
    pieces = torch.full((len(words), max_pieces), pad, dtype=torch.long)
    lengths = torch.ones(len(words), dtype=torch.long)
    for i, (w, ids) in enumerate(zip(words, encoded, strict=True)):
        ids = [pad] if w == PAD else [unk] if w == UNK or not ids else ids[:max_pieces]
        pieces[i, : len(ids)] = torch.tensor(ids)
        lengths[i] = len(ids)
    return pieces, lengths
