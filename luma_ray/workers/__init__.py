"""Model workers: the pull loop over injected ports, and its Ray Serve deployment."""
