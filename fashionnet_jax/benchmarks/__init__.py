"""Throughput benchmarks: `python -m fashionnet_jax.benchmarks.<name>`."""
