"""What a cluster's certificates are good for, as `cluster show` tells it,
and what to warn about (pure, from the state: no certificate is parsed)."""

from __future__ import annotations

import datetime as dt

from ..api.pb.oneinfra.v1 import fleet_pb2 as api
from ..model.decider.certificates import key_retires_at
from ..model.decider.joins import rfc3339
from ..model.state import Cluster
from ..pki import certlist

WARN_BEFORE = 30 * certlist.DAY  # a CA this close to its end: nothing renews a CA


def timestamp(unix: float) -> str:
    return rfc3339(dt.datetime.fromtimestamp(unix, dt.UTC))


def rotation_view(cluster: Cluster) -> api.CARotation | None:
    """Its latest CA rotation: when prepared, completed (or when it may be)."""
    rotation = cluster.rotation
    if rotation is None:
        return None
    return api.CARotation(
        prepared_at=timestamp(rotation.prepared),
        completed_at=timestamp(rotation.completed) if rotation.completed else "",
        old_key_until=timestamp(key_retires_at(rotation)),
        old_key_retired_at=timestamp(rotation.key_retired) if rotation.key_retired else "",
    )


def certificates_view(cluster: Cluster) -> list[api.Certificate]:
    shown = []
    for certificate_id, known in sorted(cluster.certificates.items()):
        ca = certificate_id in certlist.CA_IDS
        validity = known.validity
        shown.append(
            api.Certificate(
                id=certificate_id,
                file=certlist.file_of(certificate_id),
                component=certlist.member_of(certificate_id) or "",
                ca=ca,
                issued_at=timestamp(validity.issued),
                expires_at=timestamp(validity.expires),
                renews_at="" if ca else timestamp(validity.renew_at),
            )
        )
    return shown


def certificate_warnings(cluster: Cluster, now: float) -> list[str]:
    """Certificates expired, a CA near its end, a leaf whose renewal is
    late (renewal fails, or the daemon was down): each with when."""
    said = []
    for certificate_id, known in sorted(cluster.certificates.items()):
        validity, name = known.validity, certlist.file_of(certificate_id)
        member = certlist.member_of(certificate_id)
        name += f" ({member})" if member else ""
        if validity.expires <= now:
            said.append(f"{name} expired at {timestamp(validity.expires)}")
        elif certificate_id in certlist.CA_IDS:
            if validity.expires - now < WARN_BEFORE:
                days = int((validity.expires - now) // certlist.DAY)
                said.append(
                    f"CA {name} expires in {days} days, and no CA is renewed by itself: "
                    f"rotate it (cluster rotate-ca)"
                )
        elif now > validity.renew_at + (validity.expires - validity.renew_at) / 2:
            said.append(f"{name} was due for renewal at {timestamp(validity.renew_at)}")
    return said


def certificates_condition(cluster: Cluster, now: float) -> api.Condition:
    warnings = certificate_warnings(cluster, now)
    leaves = [c.validity for i, c in cluster.certificates.items() if i not in certlist.CA_IDS]
    upcoming = min((v.renew_at for v in leaves), default=0)
    return api.Condition(
        type="CertificatesValid",
        status=str(not warnings),
        reason=f"{len(warnings)} to look at" if warnings else "renewed before they expire",
        message="; ".join(warnings[:10]) if warnings else f"next renewal {timestamp(upcoming)}",
    )
