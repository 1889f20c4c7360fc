"""Test helpers shipped with promptgauge.

`promptgauge.testing.fake_server.FakeOpenAIServer` is a local OpenAI-compatible
HTTP server with deterministic replies and switchable faults.
"""
