"""IR-to-IR passes, one per module; each has a `name` and leaves the graph valid."""
