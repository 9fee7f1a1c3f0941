"""The kube-scheduler extender that asks the served models where to place each pod, with a
fallback to kube-scheduler's own scores, and a thin client (see README.md)."""
