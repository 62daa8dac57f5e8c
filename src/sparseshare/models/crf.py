"""Linear-chain CRF decoder (Lafferty et al. 2001), the task layer of the paper's Exp3.

Written here rather than taken from pytorch-crf (unmaintained since 2020): ~100 lines, batched in log
space, masked for variable lengths, with Viterbi decoding. The transition parameters live in a
submodule named ``crf`` so the default prune exclusions (``*crf*``, ``*transitions*``) keep them dense.
"""

from __future__ import annotations

import torch
from torch import nn


class LinearChainCRF(nn.Module):
    """Start, end and transition scores; ``transitions[i, j]`` scores tag i followed by tag j."""

    def __init__(self, n_tags: int):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))
        nn.init.uniform_(self.transitions, -0.1, 0.1)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised log score of the gold tag sequence, per sentence [B]."""
        b, t, _ = emissions.shape
        ar = torch.arange(b, device=emissions.device)
        s = self.start[tags[:, 0]] + emissions[ar, 0, tags[:, 0]]
        for i in range(1, t):
            step = self.transitions[tags[:, i - 1], tags[:, i]] + emissions[ar, i, tags[:, i]]
            s = s + step * mask[:, i]
        last = tags[ar, mask.sum(1) - 1]
        return s + self.end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Σ over all tag sequences of exp(score), by the forward algorithm, per sentence [B]."""
        alpha = self.start + emissions[:, 0]  # [B, K]
        for i in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.transitions + emissions[:, i].unsqueeze(1), dim=1)
            alpha = torch.where(mask[:, i : i + 1], nxt, alpha)
        return torch.logsumexp(alpha + self.end, dim=1)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per sentence."""
        return (self.log_partition(emissions, mask) - self.score(emissions, tags, mask)).mean()

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The highest-scoring tag sequence of each sentence (unpadded)."""
        b, t, _ = emissions.shape
        score = self.start + emissions[:, 0]
        back = []
        for i in range(1, t):
            total = score.unsqueeze(2) + self.transitions  # [B, K_prev, K]
            best, idx = total.max(dim=1)
            nxt = best + emissions[:, i]
            keep = mask[:, i : i + 1]
            score = torch.where(keep, nxt, score)
            # padding steps point each tag back to itself, so backtracking passes through them unchanged
            ident = torch.arange(score.shape[1], device=score.device).expand_as(idx)
            back.append(torch.where(keep, idx, ident))
        score = score + self.end
        path = torch.empty(b, t + 1, dtype=torch.long, device=score.device)
        path[:, t - 1] = last = score.argmax(1)
        for i in range(t - 2, -1, -1):  # a sentence's padding repeats its last tag; it is cut off below
            last = path[:, i] = back[i].gather(1, last.unsqueeze(1)).squeeze(1)
        path[:, t] = mask.sum(1)
        return [row[: row[-1]] for row in path.cpu().tolist()]  # one copy to the host


class CRFDecoder(nn.Module):
    """Linear emissions + linear-chain CRF: the same interface as ``LinearDecoder``."""

    def __init__(self, in_dim: int, n_tags: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, n_tags)
        self.crf = LinearChainCRF(n_tags)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h)

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.crf.nll(emissions, tags, mask)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        return self.crf.viterbi(emissions, mask)
