from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NameRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CommandReply(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class RegisterHypervisorRequest(_message.Message):
    __slots__ = ("name", "endpoint", "role", "ip_address", "port_range_low", "port_range_high", "labels", "ca_certificate", "client_certificate", "client_key", "data_dir")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_LOW_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_HIGH_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    name: str
    endpoint: str
    role: str
    ip_address: str
    port_range_low: int
    port_range_high: int
    labels: _containers.ScalarMap[str, str]
    ca_certificate: str
    client_certificate: str
    client_key: str
    data_dir: str
    def __init__(self, name: _Optional[str] = ..., endpoint: _Optional[str] = ..., role: _Optional[str] = ..., ip_address: _Optional[str] = ..., port_range_low: _Optional[int] = ..., port_range_high: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., ca_certificate: _Optional[str] = ..., client_certificate: _Optional[str] = ..., client_key: _Optional[str] = ..., data_dir: _Optional[str] = ...) -> None: ...

class LabelHypervisorRequest(_message.Message):
    __slots__ = ("name", "set", "remove")
    class SetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    set: _containers.ScalarMap[str, str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., set: _Optional[_Mapping[str, str]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class Hypervisor(_message.Message):
    __slots__ = ("name", "endpoint", "role", "ip_address", "port_range_low", "port_range_high", "labels", "mutual_tls", "components", "data_dir")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_LOW_FIELD_NUMBER: _ClassVar[int]
    PORT_RANGE_HIGH_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MUTUAL_TLS_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    name: str
    endpoint: str
    role: str
    ip_address: str
    port_range_low: int
    port_range_high: int
    labels: _containers.ScalarMap[str, str]
    mutual_tls: bool
    components: _containers.RepeatedScalarFieldContainer[str]
    data_dir: str
    def __init__(self, name: _Optional[str] = ..., endpoint: _Optional[str] = ..., role: _Optional[str] = ..., ip_address: _Optional[str] = ..., port_range_low: _Optional[int] = ..., port_range_high: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., mutual_tls: _Optional[bool] = ..., components: _Optional[_Iterable[str]] = ..., data_dir: _Optional[str] = ...) -> None: ...

class HypervisorList(_message.Message):
    __slots__ = ("hypervisors",)
    HYPERVISORS_FIELD_NUMBER: _ClassVar[int]
    hypervisors: _containers.RepeatedCompositeFieldContainer[Hypervisor]
    def __init__(self, hypervisors: _Optional[_Iterable[_Union[Hypervisor, _Mapping]]] = ...) -> None: ...

class CreateClusterRequest(_message.Message):
    __slots__ = ("name", "kubernetes_version", "control_plane_replicas", "service_cidr", "pod_cidr", "dns_domain", "apiserver_extra_sans", "vpn_enabled", "vpn_cidr", "certificate_lifetime_seconds", "ca_lifetime_seconds", "from_backup")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTROL_PLANE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CIDR_FIELD_NUMBER: _ClassVar[int]
    POD_CIDR_FIELD_NUMBER: _ClassVar[int]
    DNS_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    APISERVER_EXTRA_SANS_FIELD_NUMBER: _ClassVar[int]
    VPN_ENABLED_FIELD_NUMBER: _ClassVar[int]
    VPN_CIDR_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CA_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FROM_BACKUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    kubernetes_version: str
    control_plane_replicas: int
    service_cidr: str
    pod_cidr: str
    dns_domain: str
    apiserver_extra_sans: _containers.RepeatedScalarFieldContainer[str]
    vpn_enabled: bool
    vpn_cidr: str
    certificate_lifetime_seconds: int
    ca_lifetime_seconds: int
    from_backup: str
    def __init__(self, name: _Optional[str] = ..., kubernetes_version: _Optional[str] = ..., control_plane_replicas: _Optional[int] = ..., service_cidr: _Optional[str] = ..., pod_cidr: _Optional[str] = ..., dns_domain: _Optional[str] = ..., apiserver_extra_sans: _Optional[_Iterable[str]] = ..., vpn_enabled: _Optional[bool] = ..., vpn_cidr: _Optional[str] = ..., certificate_lifetime_seconds: _Optional[int] = ..., ca_lifetime_seconds: _Optional[int] = ..., from_backup: _Optional[str] = ...) -> None: ...

class RenewCertificatesRequest(_message.Message):
    __slots__ = ("name", "certificates", "components")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    certificates: _containers.RepeatedScalarFieldContainer[str]
    components: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., certificates: _Optional[_Iterable[str]] = ..., components: _Optional[_Iterable[str]] = ...) -> None: ...

class SetCertificateLifetimesRequest(_message.Message):
    __slots__ = ("name", "certificate_lifetime_seconds", "ca_lifetime_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CA_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    certificate_lifetime_seconds: int
    ca_lifetime_seconds: int
    def __init__(self, name: _Optional[str] = ..., certificate_lifetime_seconds: _Optional[int] = ..., ca_lifetime_seconds: _Optional[int] = ...) -> None: ...

class RotateCARequest(_message.Message):
    __slots__ = ("name", "phase")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    name: str
    phase: str
    def __init__(self, name: _Optional[str] = ..., phase: _Optional[str] = ...) -> None: ...

class EnableVpnRequest(_message.Message):
    __slots__ = ("name", "vpn_cidr")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VPN_CIDR_FIELD_NUMBER: _ClassVar[int]
    name: str
    vpn_cidr: str
    def __init__(self, name: _Optional[str] = ..., vpn_cidr: _Optional[str] = ...) -> None: ...

class ScaleClusterRequest(_message.Message):
    __slots__ = ("name", "control_plane_replicas")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTROL_PLANE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    control_plane_replicas: int
    def __init__(self, name: _Optional[str] = ..., control_plane_replicas: _Optional[int] = ...) -> None: ...

class Component(_message.Message):
    __slots__ = ("name", "role", "hypervisor", "ports", "phase", "reason")
    class PortsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    hypervisor: str
    ports: _containers.ScalarMap[str, int]
    phase: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., hypervisor: _Optional[str] = ..., ports: _Optional[_Mapping[str, int]] = ..., phase: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("type", "status", "reason", "message", "last_transition")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSITION_FIELD_NUMBER: _ClassVar[int]
    type: str
    status: str
    reason: str
    message: str
    last_transition: str
    def __init__(self, type: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ..., last_transition: _Optional[str] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("ready", "conditions", "phase", "reason")
    READY_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    conditions: _containers.RepeatedCompositeFieldContainer[Condition]
    phase: str
    reason: str
    def __init__(self, ready: _Optional[bool] = ..., conditions: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., phase: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchClusterRequest(_message.Message):
    __slots__ = ("name", "deleted_at", "cluster_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    deleted_at: int
    cluster_id: str
    def __init__(self, name: _Optional[str] = ..., deleted_at: _Optional[int] = ..., cluster_id: _Optional[str] = ...) -> None: ...

class ClusterProgress(_message.Message):
    __slots__ = ("cluster", "gone", "remaining")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    GONE_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    cluster: Cluster
    gone: bool
    remaining: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cluster: _Optional[_Union[Cluster, _Mapping]] = ..., gone: _Optional[bool] = ..., remaining: _Optional[_Iterable[str]] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("name", "cluster_id", "kubernetes_version", "control_plane_replicas", "service_cidr", "pod_cidr", "dns_domain", "apiserver_extra_sans", "vpn_enabled", "vpn_cidr", "api_server_endpoint", "components", "status", "vpn_server_address", "vpn_server_public_key", "vpn_endpoint", "vpn_peers", "certificate_lifetime_seconds", "ca_lifetime_seconds", "certificates", "ca_rotation", "backup_every_seconds", "backup_keep", "last_backup_at", "backup_failure", "restoring_backup")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    KUBERNETES_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTROL_PLANE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CIDR_FIELD_NUMBER: _ClassVar[int]
    POD_CIDR_FIELD_NUMBER: _ClassVar[int]
    DNS_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    APISERVER_EXTRA_SANS_FIELD_NUMBER: _ClassVar[int]
    VPN_ENABLED_FIELD_NUMBER: _ClassVar[int]
    VPN_CIDR_FIELD_NUMBER: _ClassVar[int]
    API_SERVER_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VPN_SERVER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VPN_SERVER_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    VPN_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    VPN_PEERS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CA_LIFETIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    CA_ROTATION_FIELD_NUMBER: _ClassVar[int]
    BACKUP_EVERY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BACKUP_KEEP_FIELD_NUMBER: _ClassVar[int]
    LAST_BACKUP_AT_FIELD_NUMBER: _ClassVar[int]
    BACKUP_FAILURE_FIELD_NUMBER: _ClassVar[int]
    RESTORING_BACKUP_FIELD_NUMBER: _ClassVar[int]
    name: str
    cluster_id: str
    kubernetes_version: str
    control_plane_replicas: int
    service_cidr: str
    pod_cidr: str
    dns_domain: str
    apiserver_extra_sans: _containers.RepeatedScalarFieldContainer[str]
    vpn_enabled: bool
    vpn_cidr: str
    api_server_endpoint: str
    components: _containers.RepeatedCompositeFieldContainer[Component]
    status: ClusterStatus
    vpn_server_address: str
    vpn_server_public_key: str
    vpn_endpoint: str
    vpn_peers: int
    certificate_lifetime_seconds: int
    ca_lifetime_seconds: int
    certificates: _containers.RepeatedCompositeFieldContainer[Certificate]
    ca_rotation: CARotation
    backup_every_seconds: int
    backup_keep: int
    last_backup_at: str
    backup_failure: str
    restoring_backup: str
    def __init__(self, name: _Optional[str] = ..., cluster_id: _Optional[str] = ..., kubernetes_version: _Optional[str] = ..., control_plane_replicas: _Optional[int] = ..., service_cidr: _Optional[str] = ..., pod_cidr: _Optional[str] = ..., dns_domain: _Optional[str] = ..., apiserver_extra_sans: _Optional[_Iterable[str]] = ..., vpn_enabled: _Optional[bool] = ..., vpn_cidr: _Optional[str] = ..., api_server_endpoint: _Optional[str] = ..., components: _Optional[_Iterable[_Union[Component, _Mapping]]] = ..., status: _Optional[_Union[ClusterStatus, _Mapping]] = ..., vpn_server_address: _Optional[str] = ..., vpn_server_public_key: _Optional[str] = ..., vpn_endpoint: _Optional[str] = ..., vpn_peers: _Optional[int] = ..., certificate_lifetime_seconds: _Optional[int] = ..., ca_lifetime_seconds: _Optional[int] = ..., certificates: _Optional[_Iterable[_Union[Certificate, _Mapping]]] = ..., ca_rotation: _Optional[_Union[CARotation, _Mapping]] = ..., backup_every_seconds: _Optional[int] = ..., backup_keep: _Optional[int] = ..., last_backup_at: _Optional[str] = ..., backup_failure: _Optional[str] = ..., restoring_backup: _Optional[str] = ...) -> None: ...

class Backup(_message.Message):
    __slots__ = ("id", "taken_at", "member", "revision", "keys", "size", "etcd_hash", "sha256", "location")
    ID_FIELD_NUMBER: _ClassVar[int]
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ETCD_HASH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    taken_at: str
    member: str
    revision: int
    keys: int
    size: int
    etcd_hash: int
    sha256: str
    location: str
    def __init__(self, id: _Optional[str] = ..., taken_at: _Optional[str] = ..., member: _Optional[str] = ..., revision: _Optional[int] = ..., keys: _Optional[int] = ..., size: _Optional[int] = ..., etcd_hash: _Optional[int] = ..., sha256: _Optional[str] = ..., location: _Optional[str] = ...) -> None: ...

class BackupList(_message.Message):
    __slots__ = ("backups", "every_seconds", "keep", "failure", "failed_at", "failures")
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    EVERY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[Backup]
    every_seconds: int
    keep: int
    failure: str
    failed_at: str
    failures: int
    def __init__(self, backups: _Optional[_Iterable[_Union[Backup, _Mapping]]] = ..., every_seconds: _Optional[int] = ..., keep: _Optional[int] = ..., failure: _Optional[str] = ..., failed_at: _Optional[str] = ..., failures: _Optional[int] = ...) -> None: ...

class RestoreClusterRequest(_message.Message):
    __slots__ = ("name", "backup_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    backup_id: str
    def __init__(self, name: _Optional[str] = ..., backup_id: _Optional[str] = ...) -> None: ...

class ScheduleBackupsRequest(_message.Message):
    __slots__ = ("name", "every_seconds", "keep")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVERY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    KEEP_FIELD_NUMBER: _ClassVar[int]
    name: str
    every_seconds: int
    keep: int
    def __init__(self, name: _Optional[str] = ..., every_seconds: _Optional[int] = ..., keep: _Optional[int] = ...) -> None: ...

class Certificate(_message.Message):
    __slots__ = ("id", "file", "component", "ca", "issued_at", "expires_at", "renews_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    CA_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RENEWS_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    file: str
    component: str
    ca: bool
    issued_at: str
    expires_at: str
    renews_at: str
    def __init__(self, id: _Optional[str] = ..., file: _Optional[str] = ..., component: _Optional[str] = ..., ca: _Optional[bool] = ..., issued_at: _Optional[str] = ..., expires_at: _Optional[str] = ..., renews_at: _Optional[str] = ...) -> None: ...

class CARotation(_message.Message):
    __slots__ = ("prepared_at", "completed_at", "old_key_until", "old_key_retired_at", "nodes_on_old_ca")
    PREPARED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    OLD_KEY_UNTIL_FIELD_NUMBER: _ClassVar[int]
    OLD_KEY_RETIRED_AT_FIELD_NUMBER: _ClassVar[int]
    NODES_ON_OLD_CA_FIELD_NUMBER: _ClassVar[int]
    prepared_at: str
    completed_at: str
    old_key_until: str
    old_key_retired_at: str
    nodes_on_old_ca: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prepared_at: _Optional[str] = ..., completed_at: _Optional[str] = ..., old_key_until: _Optional[str] = ..., old_key_retired_at: _Optional[str] = ..., nodes_on_old_ca: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterList(_message.Message):
    __slots__ = ("clusters",)
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[Cluster]
    def __init__(self, clusters: _Optional[_Iterable[_Union[Cluster, _Mapping]]] = ...) -> None: ...

class IssueKubeconfigRequest(_message.Message):
    __slots__ = ("cluster", "user", "groups", "ttl_seconds")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    user: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    ttl_seconds: int
    def __init__(self, cluster: _Optional[str] = ..., user: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class Kubeconfig(_message.Message):
    __slots__ = ("kubeconfig", "serial", "not_after")
    KUBECONFIG_FIELD_NUMBER: _ClassVar[int]
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    kubeconfig: str
    serial: str
    not_after: str
    def __init__(self, kubeconfig: _Optional[str] = ..., serial: _Optional[str] = ..., not_after: _Optional[str] = ...) -> None: ...

class HistoryRequest(_message.Message):
    __slots__ = ("cluster", "hypervisor", "since_position", "since_time", "follow")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    HYPERVISOR_FIELD_NUMBER: _ClassVar[int]
    SINCE_POSITION_FIELD_NUMBER: _ClassVar[int]
    SINCE_TIME_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    hypervisor: str
    since_position: int
    since_time: str
    follow: bool
    def __init__(self, cluster: _Optional[str] = ..., hypervisor: _Optional[str] = ..., since_position: _Optional[int] = ..., since_time: _Optional[str] = ..., follow: _Optional[bool] = ...) -> None: ...

class HistoryEvent(_message.Message):
    __slots__ = ("position", "version", "type", "schema_version", "recorded_at", "data_json", "metadata_json", "hash")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    position: int
    version: int
    type: str
    schema_version: int
    recorded_at: str
    data_json: str
    metadata_json: str
    hash: str
    def __init__(self, position: _Optional[int] = ..., version: _Optional[int] = ..., type: _Optional[str] = ..., schema_version: _Optional[int] = ..., recorded_at: _Optional[str] = ..., data_json: _Optional[str] = ..., metadata_json: _Optional[str] = ..., hash: _Optional[str] = ...) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("position", "time")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    position: int
    time: str
    def __init__(self, position: _Optional[int] = ..., time: _Optional[str] = ...) -> None: ...

class FleetView(_message.Message):
    __slots__ = ("position", "recorded_at", "hypervisors", "clusters")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    HYPERVISORS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    position: int
    recorded_at: str
    hypervisors: _containers.RepeatedCompositeFieldContainer[Hypervisor]
    clusters: _containers.RepeatedCompositeFieldContainer[Cluster]
    def __init__(self, position: _Optional[int] = ..., recorded_at: _Optional[str] = ..., hypervisors: _Optional[_Iterable[_Union[Hypervisor, _Mapping]]] = ..., clusters: _Optional[_Iterable[_Union[Cluster, _Mapping]]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("anchor_position", "anchor_hash")
    ANCHOR_POSITION_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_HASH_FIELD_NUMBER: _ClassVar[int]
    anchor_position: int
    anchor_hash: str
    def __init__(self, anchor_position: _Optional[int] = ..., anchor_hash: _Optional[str] = ...) -> None: ...

class VerifyReply(_message.Message):
    __slots__ = ("ok", "records_checked", "head_position", "head_hash", "first_bad_position", "reason")
    OK_FIELD_NUMBER: _ClassVar[int]
    RECORDS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    HEAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    FIRST_BAD_POSITION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    records_checked: int
    head_position: int
    head_hash: str
    first_bad_position: int
    reason: str
    def __init__(self, ok: _Optional[bool] = ..., records_checked: _Optional[int] = ..., head_position: _Optional[int] = ..., head_hash: _Optional[str] = ..., first_bad_position: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class LogHeadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogHeadReply(_message.Message):
    __slots__ = ("position", "hash", "recorded_at")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    position: int
    hash: str
    recorded_at: str
    def __init__(self, position: _Optional[int] = ..., hash: _Optional[str] = ..., recorded_at: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoReply(_message.Message):
    __slots__ = ("version", "store", "position", "role", "term", "leader", "leader_host", "leader_pid", "leader_since")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_HOST_FIELD_NUMBER: _ClassVar[int]
    LEADER_PID_FIELD_NUMBER: _ClassVar[int]
    LEADER_SINCE_FIELD_NUMBER: _ClassVar[int]
    version: str
    store: str
    position: int
    role: str
    term: int
    leader: str
    leader_host: str
    leader_pid: int
    leader_since: str
    def __init__(self, version: _Optional[str] = ..., store: _Optional[str] = ..., position: _Optional[int] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader: _Optional[str] = ..., leader_host: _Optional[str] = ..., leader_pid: _Optional[int] = ..., leader_since: _Optional[str] = ...) -> None: ...

class CreateJoinTokenRequest(_message.Message):
    __slots__ = ("cluster", "ttl_seconds", "description")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    ttl_seconds: int
    description: str
    def __init__(self, cluster: _Optional[str] = ..., ttl_seconds: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class JoinToken(_message.Message):
    __slots__ = ("token", "id", "expires_at", "endpoint", "ca_cert_hash", "position")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    CA_CERT_HASH_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    token: str
    id: str
    expires_at: str
    endpoint: str
    ca_cert_hash: str
    position: int
    def __init__(self, token: _Optional[str] = ..., id: _Optional[str] = ..., expires_at: _Optional[str] = ..., endpoint: _Optional[str] = ..., ca_cert_hash: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class JoinTokenInfo(_message.Message):
    __slots__ = ("id", "description", "expires_at", "expired")
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    expires_at: str
    expired: bool
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., expires_at: _Optional[str] = ..., expired: _Optional[bool] = ...) -> None: ...

class JoinTokenList(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[JoinTokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[JoinTokenInfo, _Mapping]]] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("name", "ready", "version", "address", "joined_at", "token_id", "vpn_address", "vpn_last_handshake", "vpn_received_bytes", "vpn_sent_bytes", "vpn_endpoint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    VPN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VPN_LAST_HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    VPN_RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    VPN_SENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    VPN_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    ready: bool
    version: str
    address: str
    joined_at: str
    token_id: str
    vpn_address: str
    vpn_last_handshake: str
    vpn_received_bytes: int
    vpn_sent_bytes: int
    vpn_endpoint: str
    def __init__(self, name: _Optional[str] = ..., ready: _Optional[bool] = ..., version: _Optional[str] = ..., address: _Optional[str] = ..., joined_at: _Optional[str] = ..., token_id: _Optional[str] = ..., vpn_address: _Optional[str] = ..., vpn_last_handshake: _Optional[str] = ..., vpn_received_bytes: _Optional[int] = ..., vpn_sent_bytes: _Optional[int] = ..., vpn_endpoint: _Optional[str] = ...) -> None: ...

class NodeList(_message.Message):
    __slots__ = ("nodes", "observed")
    NODES_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    observed: bool
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., observed: _Optional[bool] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("cluster", "node")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    node: str
    def __init__(self, cluster: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class RevokeJoinTokenRequest(_message.Message):
    __slots__ = ("cluster", "id")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    id: str
    def __init__(self, cluster: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...
