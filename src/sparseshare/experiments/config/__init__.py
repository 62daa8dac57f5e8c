"""The schema of an experiment config: sections, checks, datasets. Imports no runner and builds no model."""
