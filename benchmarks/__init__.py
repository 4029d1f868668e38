"""Side-by-side benchmarks of our trust server against notary 0.7.0 (see docs/performance.md)."""
