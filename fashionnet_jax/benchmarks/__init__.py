"""Benchmarks a user runs: `python -m fashionnet_jax.benchmarks.<name>`; NOTES.md is the performance log.

Modules: train_step (train-step throughput, MFU, memory), hlo_audit (the
compiled step's kernels and traffic, deviceless), hlo_census (kernels read off
HLO text), profile_summary (where a profiled step spends device time), flops
(the analytic FLOP count), torch_reference (the PyTorch FashionNet compared
against), input_pipeline (grain against tf.data), landmark_pooling (gather +
max against a dense masked max), retrieval (accelerator top-k against NumPy),
serve (a load test of the HTTP server), attr_file_memory (streaming the
attribute file), targets/ (deviceless compile targets), results/ (measured
runs).
"""
