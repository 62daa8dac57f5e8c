"""Experiment configs, runners and reports."""
