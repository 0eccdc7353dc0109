"""Manifests, pure: documents read into what they ask, planned against what
the fleet holds. What `show -o yaml` prints, applied again, changes nothing;
a field that cannot change refuses its object, naming the field; the
original oneinfra's manifests map onto this one's, and their generated
material is refused; bad documents each get a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.cli import apply, applyplan, manifests
from oneinfra.model.versions import SUPPORTED

ORIGINAL = Path(__file__).parent / "manifests" / "original"


def cluster_doc(name: str = "prod", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "oneinfra.io/v1", "kind": "Cluster", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def hypervisor_doc(name: str = "pub", **spec: Any) -> dict[str, Any]:
    spec = {"endpoint": "unix:///run/hv/pub.sock", "ipAddress": "192.0.2.1", "role": "public",
            **spec}  # fmt: skip
    return {"apiVersion": "oneinfra.io/v1", "kind": "Hypervisor", "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def read(*docs: dict[str, Any]) -> manifests.Read:
    return manifests.read((f"f.yaml#{i}", d) for i, d in enumerate(docs, 1))


def held(request: api.CreateClusterRequest) -> api.Cluster:
    """The cluster the daemon would hold after the create, defaults filled."""
    return api.Cluster(
        name=request.name,
        kubernetes_version=request.kubernetes_version or SUPPORTED[0].version,
        control_plane_replicas=request.control_plane_replicas or 1,
        service_cidr=request.service_cidr or "10.96.0.0/12",
        pod_cidr=request.pod_cidr or "10.244.0.0/16",
        dns_domain=request.dns_domain or "cluster.local",
        apiserver_extra_sans=list(request.apiserver_extra_sans),
        vpn_enabled=request.vpn_enabled,
        vpn_cidr=request.vpn_cidr or "10.220.0.0/16",
        certificate_lifetime_seconds=request.certificate_lifetime_seconds or 365 * 86400,
        ca_lifetime_seconds=request.ca_lifetime_seconds or 3650 * 86400,
    )


durations = st.one_of(
    st.integers(min_value=1, max_value=2**32 - 1),
    st.builds(lambda n, u: f"{n}{u}", st.integers(1, 999), st.sampled_from("smhd")),
)
spec_fields: dict[str, st.SearchStrategy[Any]] = {
    "kubernetesVersion": st.sampled_from([r.version for r in SUPPORTED]),
    "controlPlaneReplicas": st.sampled_from([1, 3, 5]),
    "serviceCidr": st.sampled_from(["10.96.0.0/12", "172.20.0.0/16"]),
    "podCidr": st.sampled_from(["10.244.0.0/16", "10.32.0.0/12"]),
    "dnsDomain": st.sampled_from(["cluster.local", "prod.example"]),
    "apiserverExtraSans": st.lists(
        st.sampled_from(["a.example", "b.example", "10.0.0.1"]), unique=True
    ),
    "vpn": st.fixed_dictionaries({"enabled": st.booleans()}),
    "certificateLifetime": durations,
    "caLifetime": durations,
}
specs = st.fixed_dictionaries({}, optional=spec_fields)


@settings(max_examples=200, deadline=None)
@given(specs)
def test_a_cluster_shown_as_a_manifest_and_applied_again_changes_nothing(
    spec: dict[str, Any],
) -> None:
    (wanted,) = read(cluster_doc(**spec)).objects
    first = applyplan.plan(wanted, None)
    assert first.outcome == "created" and first.calls[0].rpc == "CreateCluster"
    request = first.calls[0].request
    assert isinstance(request, api.CreateClusterRequest)
    current = held(request)
    # As the daemon holds it, everything it asked for is there ...
    assert applyplan.plan(wanted, current).outcome == "unchanged"
    # ... and what `show -o yaml` prints of it, read back, asks for nothing more.
    shown = yaml.safe_load(yaml.safe_dump(applyplan.cluster_manifest(current)))
    (again,) = read(shown).objects
    assert applyplan.plan(again, current).outcome == "unchanged"


def test_a_hypervisor_shown_and_applied_again_changes_nothing() -> None:
    current = api.Hypervisor(name="pub", endpoint="unix:///run/hv/pub.sock", role="public",
                             ip_address="192.0.2.1", port_range_low=30000,
                             port_range_high=32767, labels={"zone": "a"},
                             data_dir="/var/lib/oneinfra")  # fmt: skip
    (again,) = read(applyplan.hypervisor_manifest(current)).objects
    assert applyplan.plan(again, current).outcome == "unchanged"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("serviceCidr", "172.20.0.0/16", "spec.serviceCidr"),
        ("podCidr", "10.1.0.0/16", "spec.podCidr"),
        ("dnsDomain", "other.local", "spec.dnsDomain"),
        ("kubernetesVersion", SUPPORTED[-1].version, "spec.kubernetesVersion"),
        ("apiserverExtraSans", ["x.example"], "spec.apiserverExtraSans"),
    ],
)
def test_a_field_fixed_at_creation_refuses_the_whole_object(
    field: str, value: Any, named: str
) -> None:
    current = held(api.CreateClusterRequest(name="prod", kubernetes_version=SUPPORTED[0].version))
    (wanted,) = read(cluster_doc(controlPlaneReplicas=3, **{field: value})).objects
    refused = applyplan.plan(wanted, current)
    assert refused.outcome == "refused" and refused.calls == []  # the scale is not sent either
    assert named in refused.reason and "cannot change after creation" in refused.reason


def test_what_can_change_is_sent_as_its_commands() -> None:
    current = held(api.CreateClusterRequest(name="prod"))
    (wanted,) = read(cluster_doc(controlPlaneReplicas=3, vpn={"enabled": True},
                                 certificateLifetime="90d",
                                 backups={"every": "1h", "keep": 7})).objects  # fmt: skip
    configured = applyplan.plan(wanted, current)
    assert configured.outcome == "configured"
    assert [c.rpc for c in configured.calls] == [
        "ScaleCluster",
        "EnableVpn",
        "SetCertificateLifetimes",
        "ScheduleBackups",
    ]
    assert "spec.controlPlaneReplicas: 1 -> 3" in configured.changes
    assert "spec.certificateLifetime: 365d -> 90d" in configured.changes


def test_a_vpn_cannot_be_turned_off_and_a_hypervisors_endpoint_cannot_move() -> None:
    current = held(api.CreateClusterRequest(name="prod", vpn_enabled=True))
    (wanted,) = read(cluster_doc(vpn={"enabled": False})).objects
    assert "spec.vpn.enabled" in applyplan.plan(wanted, current).reason
    hypervisor = api.Hypervisor(name="pub", endpoint="unix:///a.sock", role="public",
                                ip_address="192.0.2.1")  # fmt: skip
    (moved,) = read(hypervisor_doc(endpoint="unix:///b.sock")).objects
    refused = applyplan.plan(moved, hypervisor)
    assert refused.outcome == "refused" and "spec.endpoint" in refused.reason


def test_labels_given_are_the_whole_set() -> None:
    hypervisor = api.Hypervisor(
        name="pub", endpoint="unix:///run/hv/pub.sock", role="public", ip_address="192.0.2.1",
        labels={"zone": "a", "old": "x"},
    )  # fmt: skip
    doc = hypervisor_doc()
    doc["metadata"]["labels"] = {"zone": "b"}
    (wanted,) = read(doc).objects
    (call,) = applyplan.plan(wanted, hypervisor).calls
    assert call.rpc == "LabelHypervisor" and isinstance(call.request, api.LabelHypervisorRequest)
    assert dict(call.request.set) == {"zone": "b"} and list(call.request.remove) == ["old"]


def test_the_originals_samples_map_onto_this_oneinfras_objects() -> None:
    docs = [
        (f"{path.name}#{i}", d)
        for path in sorted(ORIGINAL.glob("*.yaml"))
        for i, d in enumerate(yaml.safe_load_all(path.read_text()), 1)
    ]
    found = manifests.read(docs, {"1.18.2": SUPPORTED[0].version})
    by_name = {w.name: w for w in found.objects}
    assert len([w for w in found.objects if isinstance(w, manifests.ClusterWanted)]) == 18
    ha = by_name["ha-cluster"]
    assert isinstance(ha, manifests.ClusterWanted) and ha.control_plane_replicas == 3
    assert any("Component objects are not applied" in w for w in found.warnings)
    vpn = by_name["vpn-cluster"]
    assert isinstance(vpn, manifests.ClusterWanted)
    assert (vpn.vpn_enabled, vpn.vpn_cidr, vpn.pod_cidr) == (True, "10.220.0.0/16", "10.244.0.0/16")
    assert vpn.apiserver_extra_sans == ["vpn-cluster.example.com"]
    public = by_name["test-public-hv"]
    assert isinstance(public, manifests.HypervisorWanted)
    assert (
        public.spec.role == "public"
        and public.spec.endpoint == "unix:///run/hv/test-public-hv.sock"
    )
    remote = by_name["test-private-hv-3"]
    assert isinstance(remote, manifests.HypervisorWanted)
    assert remote.spec.endpoint == "tcp://198.51.100.13:10250" and remote.spec.role == "private"
    assert by_name["cluster-5-1"].kubernetes_version == SUPPORTED[0].version  # type: ignore[union-attr]


def test_an_unsupported_version_of_the_original_says_which_are_and_how_to_map() -> None:
    doc = {"apiVersion": manifests.ORIGINAL_CLUSTER, "kind": "Cluster",
           "metadata": {"name": "old"}, "spec": {"kubernetesVersion": "1.17.4"}}  # fmt: skip
    with pytest.raises(manifests.ManifestError) as error:
        read(doc)
    message = str(error.value)
    assert "1.17.4" in message and all(r.version in message for r in SUPPORTED)
    assert "--map-version 1.17.4=" in message


@pytest.mark.parametrize(
    "spec",
    [
        {"certificateAuthorities": {"etcdClient": {"certificate": "PEM", "privateKey": "KEY"}}},
        {"joinKey": {"privateKey": "KEY"}},
        {"vpn": {"enabled": True, "privateKey": "KEY"}},
        {"apiServer": {"ca": {"certificate": "PEM"}}},
        {"joinTokens": ["abcdef.0123456789abcdef"]},
    ],
)
def test_the_originals_generated_material_is_refused_when_given(spec: dict[str, Any]) -> None:
    doc = {"apiVersion": manifests.ORIGINAL_CLUSTER, "kind": "Cluster",
           "metadata": {"name": "c"}, "spec": spec}  # fmt: skip
    with pytest.raises(manifests.ManifestError, match="generated material is not taken over"):
        read(doc)
    empty: dict[str, Any] = {
        k: ({} if isinstance(v, dict) else []) for k, v in spec.items() if k != "vpn"
    }
    assert read({**doc, "spec": empty}).objects  # empty: ignored


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}, "v1 Pod is not known"),
        ({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"},
         "it is not an object to apply"),
        ({"kind": "Cluster"}, "apiVersion and kind are needed"),
        (["a", "list"], "not an object"),
        (cluster_doc(replicas=3), "unknown field `replicas`"),
        (cluster_doc(controlPlaneReplicas="three"), "$.spec.controlPlaneReplicas"),
        (cluster_doc(controlPlaneReplicas=2**40), "$.spec.controlPlaneReplicas"),
        (cluster_doc(backups={"every": "1h", "keep": -1}), "$.spec.backups.keep"),
        (hypervisor_doc(portRange={"low": 30000, "high": 2**33}), "$.spec.portRange.high"),
        ({**cluster_doc(), "metadata": {}}, "missing required field `name`"),
        (cluster_doc(name="Not_A_Label"), "is not a DNS label"),
        (cluster_doc(certificateLifetime="forever"), "is not a duration"),
        (cluster_doc(caLifetime=0), "out of range"),
        (hypervisor_doc(role="both"), "$.spec.role"),
    ],
)  # fmt: skip
def test_a_bad_document_is_a_clear_error_naming_its_source(doc: Any, said: str) -> None:
    with pytest.raises(manifests.ManifestError) as error:
        read(cluster_doc("fine"), doc)
    assert str(error.value).startswith("f.yaml#2: ") and said in str(error.value)


def test_two_objects_of_one_name_are_refused() -> None:
    with pytest.raises(manifests.ManifestError, match=r"also in f\.yaml#1"):
        read(cluster_doc("a"), cluster_doc("a", controlPlaneReplicas=3))


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                    st.lists(st.integers(), max_size=3))  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            cluster_doc(controlPlaneReplicas=3, vpn={"enabled": True}),
            hypervisor_doc(portRange={"low": 30000, "high": 32767}),
        ]
    ),
    st.lists(
        st.sampled_from(
            [
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "name",
                "vpn",
                "portRange",
                "role",
                "controlPlaneReplicas",
                "extra",
            ]
        ),
        min_size=1,
        max_size=3,
    ),
    scalars,
)
def test_any_mangled_document_is_read_or_refused_never_a_crash(
    doc: dict[str, Any], keys: list[str], value: Any
) -> None:
    """200 generated manifests: wrong types, missing or unknown fields and
    kinds. Each is read, or refused with a ManifestError; nothing else."""
    mangled: Any = yaml.safe_load(yaml.safe_dump(doc))
    for key in keys:
        for part in (mangled, mangled.get("spec"), mangled.get("metadata")):
            if isinstance(part, dict) and (key in part or key == "extra"):
                part[key] = value
                break
    try:
        read(mangled)
    except manifests.ManifestError as error:
        assert str(error).startswith("f.yaml#1: ")


def test_input_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply, "MAX_BYTES", 100)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 200)
    with pytest.raises(manifests.ManifestError.__mro__[1], match="over 100 bytes"):
        list(apply.inputs([str(big)]))


def test_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    laughs = tmp_path / "laughs.yaml"
    laughs.write_text('a: &a ["lol"]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n')
    with pytest.raises(manifests.ManifestError.__mro__[1], match="alias at line 2"):
        list(apply.documents([str(laughs)]))


def test_the_published_schema_holds_what_show_prints_and_not_a_bad_document() -> None:
    schema = manifests.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    cluster = held(api.CreateClusterRequest(name="prod", vpn_enabled=True))
    hypervisor = api.Hypervisor(name="pub", endpoint="unix:///run/hv/pub.sock", role="public",
                                ip_address="192.0.2.1", port_range_low=30000,
                                port_range_high=32767)  # fmt: skip
    for shown in (applyplan.cluster_manifest(cluster), applyplan.hypervisor_manifest(hypervisor)):
        validator.validate(yaml.safe_load(yaml.safe_dump(shown)))
    assert not validator.is_valid(cluster_doc(controlPlaneReplicas="three"))
    assert not validator.is_valid({**cluster_doc(), "kind": "Clusters"})
