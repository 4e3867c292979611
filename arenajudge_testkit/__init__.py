"""What the tests and the benchmarks share: OpenAI-compatible stand-in servers, synthetic benches,
the seed's scoring written row by row, and the small real models the vLLM tests serve.

Never imported by `arenajudge`: the product talks to real servers only.
"""
