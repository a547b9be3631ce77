"""Checks for deploy/kubernetes/: Kubernetes objects against the ``kubernetes`` client's models,
KubeRay objects against deploy/kubernetes/schemas/kuberay-v1-fields.yaml, and a small
``kustomize build`` (resources, JSON 6902 patches, images, labels) to have something to check.

Every check returns a list of errors, each naming where (``spec.rayClusterConfig...``) and
what; an unknown field is an error, which the models' own deserializer would let pass.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

SCHEMAS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "schemas"
K8S_MODELS = {
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ConfigMap"): "V1ConfigMap",
}
KUBERAY_KINDS = {("ray.io/v1", "RayService"), ("ray.io/v1", "RayCluster")}
_SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def k8s_errors(value: Any, type_name: str, where: str) -> list[str]:
    """``value`` against a ``kubernetes`` client type (``V1PodSpec``, ``list[V1EnvVar]``,
    ``dict(str, str)``, ``str``...): unknown fields, wrong shapes and missing required fields."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        inner = type_name[5:-1]
        return [e for i, item in enumerate(value) for e in k8s_errors(item, inner, f"{where}[{i}]")]
    if type_name.startswith(("dict(", "dict[")):  # dict(str, str) or dict[str, str]
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping, got {type(value).__name__}"]
        inner = type_name[5:-1].split(",", 1)[1].strip()
        return [e for k, v in value.items() for e in k8s_errors(v, inner, f"{where}.{k}")]
    if type_name in ("object", "datetime", "date"):
        return []
    if type_name in _SCALARS:
        wanted = _SCALARS[type_name]
        if isinstance(value, bool) and type_name != "bool" or not isinstance(value, wanted):
            return [f"{where}: expected {type_name}, got {value!r}"]
        return []
    model = getattr(k8s, type_name, None)
    if model is None:
        return [f"{where}: no Kubernetes model {type_name}"]
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} mapping, got {value!r}"]
    fields = {json_key: attr for attr, json_key in model.attribute_map.items()}
    errors = [
        f"{where}.{key}: unknown field of {type_name} (known: {', '.join(sorted(fields))})"
        for key in value
        if key not in fields
    ]
    for key, item in value.items():
        if key in fields and item is not None:
            errors += k8s_errors(item, model.openapi_types[fields[key]], f"{where}.{key}")
    if not errors:
        try:  # the models' own checks: required fields, enums the client knows
            k8s.ApiClient()._ApiClient__deserialize(value, type_name)  # type: ignore[attr-defined]
        except (ValueError, TypeError) as err:
            errors.append(f"{where}: {type_name}: {err}")
    return errors


@functools.cache
def kuberay_types() -> dict[str, dict[str, str]]:
    table = yaml.safe_load((SCHEMAS / "kuberay-v1-fields.yaml").read_text(encoding="utf-8"))
    return dict(table["types"])


def kuberay_errors(value: Any, type_expr: str, where: str) -> list[str]:
    """``value`` against a type of the KubeRay field table (see the table's header)."""
    if type_expr == "any":
        return []
    if type_expr.startswith("k8s:"):
        return k8s_errors(value, type_expr[4:], where)
    if type_expr.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        inner = type_expr[5:-1]
        return [e for i, v in enumerate(value) for e in kuberay_errors(v, inner, f"{where}[{i}]")]
    if type_expr == "map[string]string":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            return [f"{where}: expected a mapping of strings to strings, got {value!r}"]
        return []
    if type_expr.startswith("enum["):
        allowed = type_expr[5:-1].split("|")
        return [] if value in allowed else [f"{where}: {value!r} is not one of {allowed}"]
    if type_expr == "string":
        return [] if isinstance(value, str) else [f"{where}: expected a string, got {value!r}"]
    if type_expr == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected an integer, got {value!r}"]
    if type_expr == "bool":
        return [] if isinstance(value, bool) else [f"{where}: expected true/false, got {value!r}"]
    fields = kuberay_types().get(type_expr)
    if fields is None:
        return [f"{where}: the field table has no type {type_expr}"]
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_expr} mapping, got {value!r}"]
    names = {name.rstrip("!"): kind for name, kind in fields.items()}
    errors = [
        f"{where}.{key}: unknown field of KubeRay's {type_expr} (known: {', '.join(sorted(names))})"
        for key in value
        if key not in names
    ]
    errors += [
        f"{where}.{name[:-1]}: required by KubeRay's {type_expr}"
        for name in fields
        if name.endswith("!") and name[:-1] not in value
    ]
    for key, item in value.items():
        if key in names:
            errors += kuberay_errors(item, names[key], f"{where}.{key}")
    return errors


def object_errors(obj: Any, where: str) -> list[str]:
    """One manifest object, by its apiVersion and kind."""
    if not isinstance(obj, dict):
        return [f"{where}: not a mapping"]
    key = (obj.get("apiVersion"), obj.get("kind"))
    name = (obj.get("metadata") or {}).get("name")
    where = f"{where}: {key[1]}/{name}"
    if key in KUBERAY_KINDS:
        return kuberay_errors(obj, str(key[1]), where)
    if key in K8S_MODELS:
        model = K8S_MODELS[key]  # type: ignore[index]
        return k8s_errors(obj, model, where)
    return [f"{where}: no schema for apiVersion {key[0]} kind {key[1]} here"]


# A small `kustomize build`: enough to check what the overlays produce.


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise ValueError(f"JSON pointer {path!r} must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def apply_json_patch(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add, replace and remove (what the overlays use); anything else is an error."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _pointer(op["path"])
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        kind = op["op"]
        if kind in ("add", "replace") and isinstance(node, list):
            if last == "-" and kind == "add":
                node.append(copy.deepcopy(op["value"]))
            elif kind == "add":
                node.insert(int(last), copy.deepcopy(op["value"]))
            else:
                node[int(last)] = copy.deepcopy(op["value"])
        elif kind in ("add", "replace"):
            if kind == "replace" and last not in node:
                raise KeyError(f"replace: {op['path']} does not exist")
            node[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del node[int(last) if isinstance(node, list) else last]
        else:
            raise ValueError(f"unsupported JSON patch op {kind!r}")
    return doc


def _matches(obj: dict[str, Any], target: dict[str, Any]) -> bool:
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    meta = obj.get("metadata") or {}
    wanted = {"group": group, "version": version, "kind": obj.get("kind"), "name": meta.get("name")}
    return all(wanted.get(key) == value for key, value in target.items() if key in wanted)


def pod_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod templates of a RayService or RayCluster (head first)."""
    spec = obj.get("spec") or {}
    cluster = spec.get("rayClusterConfig", spec) if obj.get("kind") == "RayService" else spec
    groups = [cluster.get("headGroupSpec") or {}, *(cluster.get("workerGroupSpecs") or [])]
    return [g["template"] for g in groups if "template" in g]


def _set_image(image: str, rule: dict[str, Any]) -> str:
    name, _, tag = image.partition(":")
    if name != rule["name"]:
        return image
    return f"{rule.get('newName', name)}:{rule.get('newTag', tag)}"


def build(folder: Path) -> list[dict[str, Any]]:
    """The objects ``kustomize build folder`` would print (for the fields this layout uses)."""
    spec = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))
    known = {"apiVersion", "kind", "resources", "patches", "images", "labels", "configurations"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"{folder}: kustomization fields this check does not model: {unknown}")
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        objects += build(path) if path.is_dir() else load_all(path)
    for patch in spec.get("patches", []):
        ops = load_all(folder / patch["path"])[0]
        if not isinstance(ops, list):
            raise ValueError(f"{folder / patch['path']}: only JSON 6902 patches are modelled")
        hits = [i for i, obj in enumerate(objects) if _matches(obj, patch["target"])]
        if len(hits) != 1:
            raise ValueError(f"{folder}: patch {patch['path']} matches {len(hits)} objects")
        objects[hits[0]] = apply_json_patch(objects[hits[0]], ops)
    for rule in spec.get("images", []):
        for obj in objects:
            for template in pod_templates(obj):
                for container in template.get("spec", {}).get("containers", []):
                    container["image"] = _set_image(container["image"], rule)
    for label in spec.get("labels", []):
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    return objects


def ray_labels(params: dict[str, str]) -> dict[str, str]:
    """``rayStartParams.labels`` (``k=v,k2=v2``, as ``ray start --labels`` takes it)."""
    text = params.get("labels", "")
    pairs = [p for p in re.split(r"\s*,\s*", text.strip()) if p]
    return dict(p.split("=", 1) for p in pairs)
