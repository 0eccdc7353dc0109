"""Backups of clusters' etcd: a snapshot taken in a running member through
CRI, read out to the management host, sealed with the cluster's data key
(so that a deleted cluster's backups are shredded with its key), and
recorded as an event; scheduled per cluster, the older pruned."""
