"""`make demo`: the two-iteration weak-to-strong loop on the embedded default."""
