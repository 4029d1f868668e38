"""Command modules: one per area (sign/verify/pull, admin, signers, keys, trust)."""
