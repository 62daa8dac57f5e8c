"""Trainer, task samplers, mask search (IMP with multi-task warmup)."""
