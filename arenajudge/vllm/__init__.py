"""Managed vLLM serving: the server specification, process lifecycle, and what the tools ask a vLLM server.

Below requests in the flow: it may import config, client and the leaf helpers, never engine, judging or cli.
"""
