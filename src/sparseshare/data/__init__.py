"""Data: readers, tag schemes, source resolution, embeddings, batching."""
