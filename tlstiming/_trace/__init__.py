"""Request tracing: the client-neutral seam and one adapter module per HTTP client."""
