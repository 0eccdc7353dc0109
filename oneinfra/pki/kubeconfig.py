"""Kubeconfigs with their credentials inlined: the form kubectl and the
control-plane components both read."""

from __future__ import annotations

import base64

import yaml

# libyaml's emitter when PyYAML has it (its wheels do): the same bytes, 16x
# faster. Rendering a control plane's kubeconfigs was nearly all of a cold
# pass's time after a restart (5 ms each in pure Python).
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def kubeconfig(
    cluster: str, server: str, ca_pem: str, user: str, cert_pem: str, key_pem: str
) -> str:
    """A kubeconfig (YAML) of one cluster, one user and one context."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    context_name = f"{user}@{cluster}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [{"name": context_name, "context": {"cluster": cluster, "user": user}}],
        "current-context": context_name,
    }
    return yaml.dump(document, Dumper=YAML_DUMPER, sort_keys=False)
