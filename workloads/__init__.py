"""Programs that run as in-cluster Jobs/containers and, unchanged, as local processes."""
