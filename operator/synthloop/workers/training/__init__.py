"""Shared training helpers: data, schedules, losses, checkpoints, distributed setup."""
