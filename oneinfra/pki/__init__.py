"""Certificates and keys, pure: the X.509 primitives (x509), the table of a
cluster's certificates as kubeadm lays them out (certlist), the issuer that
makes them and seals their keys (issuer, sealing), and kubeconfigs.

Imports nothing of oneinfra but its errors: the model's events carry what
this package makes. Certificate lifecycle (renewal, CA rotation) goes here,
beside issuance.
"""
