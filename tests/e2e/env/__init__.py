"""A real CRI test environment: containerd hypervisors in network namespaces,
a local registry mirroring registry.k8s.io and docker.io, and upstream
Kubernetes and etcd built from the Go module proxy. Independent of oneinfra.

    python -m tests.e2e.env up [--public N] [--private N]
    python -m tests.e2e.env status
    python -m tests.e2e.env down
"""
