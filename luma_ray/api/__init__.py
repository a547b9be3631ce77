"""The HTTP API: wire schemas, API keys, the FastAPI app factory and the Serve ingress."""
