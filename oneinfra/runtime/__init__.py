"""I/O with the machines oneinfra drives: hypervisors through CRI (cri),
pods made real there (realize), etcdctl run inside a member (etcdctl),
clusters' API servers probed (probe), and the client TLS all of them use.

Every failure is mapped here, at the boundary, to oneinfra's own errors
(CRIError and its kinds). Imports the rendering (the pods it makes real)
and the model, never the reconciler, the daemon or the CLI.
"""
