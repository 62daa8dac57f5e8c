import itertools

import pytest
import torch

from sparseshare.models.crf import CRFDecoder, LinearChainCRF
from sparseshare.pruning import prunable_names


def _setup(seed=0, b=3, t=4, k=3):
    g = torch.Generator().manual_seed(seed)
    crf = LinearChainCRF(k)
    with torch.no_grad():
        for p in crf.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    em = torch.randn(b, t, k, generator=g)
    lengths = torch.tensor([t, 2, 1][:b])
    mask = torch.arange(t)[None] < lengths[:, None]
    return crf, em, mask, lengths


def _brute(crf, em, n):
    scores = {}
    for seq in itertools.product(range(em.shape[-1]), repeat=n):
        tags = torch.tensor(seq + (0,) * (em.shape[0] - n))[None]
        mask = (torch.arange(em.shape[0]) < n)[None]
        scores[seq] = crf.score(em[None], tags, mask)[0]
    return scores


def test_log_partition_and_viterbi_match_brute_force():
    crf, em, mask, lengths = _setup()
    logz = crf.log_partition(em, mask)
    best = crf.viterbi(em, mask)
    for i, n in enumerate(lengths.tolist()):
        scores = _brute(crf, em[i], n)
        assert logz[i].item() == pytest.approx(
            torch.logsumexp(torch.stack(list(scores.values())), 0).item(), abs=1e-4
        )
        assert tuple(best[i]) == max(scores, key=lambda s: scores[s].item())
        assert len(best[i]) == n


def test_training_learns_a_transition_pattern_and_reaches_transitions():
    torch.manual_seed(0)
    dec = CRFDecoder(4, 3)
    opt = torch.optim.Adam(dec.parameters(), lr=0.05)
    h = torch.randn(8, 6, 4)
    tags = torch.tensor([[i % 3 for i in range(6)]] * 8)  # 0 -> 1 -> 2 -> 0 ...: only transitions tell
    mask = torch.ones(8, 6, dtype=torch.bool)
    first = None
    for _ in range(150):
        opt.zero_grad()
        loss = dec.loss(dec(h), tags, mask)
        loss.backward()
        assert dec.crf.transitions.grad.abs().sum() > 0
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.2 * first
    assert dec.decode(dec(h), mask)[0] == tags[0].tolist()


def test_crf_parameters_are_not_prunable_by_default():
    names = {f"heads.ner.{n}": p for n, p in CRFDecoder(4, 3).named_parameters()}
    names["encoder.crf.transitions"] = torch.zeros(3, 3)
    assert prunable_names(names) == []
