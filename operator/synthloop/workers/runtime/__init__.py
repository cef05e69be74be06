"""What every worker process shares: the distributed env, the torchrun launcher, the run's
device/engine/logs/outputs, and readers for data files as the field releases them."""
