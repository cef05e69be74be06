"""synthloop: the Nemotron-4 340B alignment recipe as Kubernetes custom resources."""

__version__ = "0.1.0"
