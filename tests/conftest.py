import torch

# Test models are small: one thread avoids OpenMP spin-waits when the CPUs are shared (100x slower).
# Set at import, before any fixture (module-scoped fixtures run whole experiments) and for the session.
torch.set_num_threads(1)
