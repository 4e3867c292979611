"""Requests to OpenAI-compatible endpoints: the HTTP client, retries, the engine that spreads work, managed vLLM servers."""
