"""Training pieces: the pretraining blend, training data readers, step schedules and losses."""
