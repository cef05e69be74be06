"""The process-backed node agent: a kubelet stand-in that runs pods as local processes."""
