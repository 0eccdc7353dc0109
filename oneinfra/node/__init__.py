"""The worker's side of a join (`oneinfra node join`): run on the worker,
as root, with what `kubeadm join` takes (the endpoint, a join token, the
CA's hash). A thin flow, not a second daemon:

1. discovery (discovery.py, pure): `cluster-info` read without trust, its
   signature checked with the token (the controller manager's
   bootstrapsigner made it) and its CA checked against the pinned hash;
2. the token tried against the cluster (it may read `kubelet-config`): an
   expired or revoked token fails here, before anything is written;
3. the kubelet's files (kubelet.py renders them, pure) written all or none:
   the CA, a bootstrap kubeconfig, its configuration;
4. the kubelet started: a systemd unit where systemd runs, or exec'd in
   the foreground; it does TLS bootstrap itself (its client CSR approved by
   the controller manager through kubeadm's RBAC) and rotates its
   certificates.

A product command beside `local`: it imports the pure PKI and oneinfra's
errors, nothing of the daemon.
"""
