"""Reading deploy/ as the engines do, without the engines: compose's variable interpolation and a
kustomize renderer for the features our kustomizations use (resources, namespace, images, strategic
merge patches). Where `kubectl` is installed, a test holds this renderer to kubectl's own output."""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.helpers import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
K8S = DEPLOY / "k8s"
OVERLAYS = ("cpu", "gpu")

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $VAR; $$ is a literal $ (compose-spec "Interpolation").
_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def variables(text: str) -> set[str]:
    """Every variable a compose file reads."""
    return {m["braced"] or m["plain"] for m in _VAR.finditer(text) if m.group(0) != "$$"}


def interpolate(value, env: dict[str, str]):
    """A compose value (str, list or mapping) with its variables substituted as compose does."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m["braced"] or m["plain"]
        got, op, arg = env.get(name), m["op"], m["arg"]
        if op == ":-" and not got or op == "-" and got is None:
            return arg
        if op in (":?", "?") and (got is None or (op == ":?" and not got)):
            raise ValueError(f"required variable {name} is missing: {arg}")
        return got or ""

    return _VAR.sub(one, value)


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks skipped), as compose reads an env file."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


# ---- kustomize


def _merge(base, patch):
    """Strategic merge for our patches: mappings merge key by key, lists of named items (containers,
    env, volumes) merge by name, any other list is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for key, value in patch.items():
            out[key] = _merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    named = lambda items: isinstance(items, list) and items and all(isinstance(i, dict) and "name" in i for i in items)  # noqa: E731
    if named(base) and named(patch):
        out = copy.deepcopy(base)
        index = {item["name"]: i for i, item in enumerate(out)}
        added = []   # items new to the list go first, as kustomize puts them
        for item in patch:
            if item["name"] in index:
                out[index[item["name"]]] = _merge(out[index[item["name"]]], item)
            else:
                added.append(copy.deepcopy(item))
        return added + out
    return copy.deepcopy(patch)


def _images(obj, images: list[dict]) -> None:
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    name = value.split("@")[0].rsplit(":", 1)[0] if ":" in value.split("/")[-1] else value
                    for rule in images:
                        if rule["name"] == name:
                            node[key] = f"{rule.get('newName', name)}:{rule['newTag']}"
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(obj)


def render_python(folder: Path) -> list[dict]:
    """The objects ``kubectl kustomize folder`` prints, for the kustomization features we use."""
    kust = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unknown = set(kust) - {"apiVersion", "kind", "namespace", "resources", "images", "patches"}
    if unknown:
        raise ValueError(f"{folder}: kustomization fields {sorted(unknown)} are beyond this renderer")
    objects: list[dict] = []
    for res in kust.get("resources", []):
        path = (folder / res).resolve()
        objects += render_python(path) if path.is_dir() else [o for o in yaml.safe_load_all(path.read_text()) if o]
    for patch in kust.get("patches", []):
        body = yaml.safe_load((folder / patch["path"]).read_text())
        key = (body["kind"], body["metadata"]["name"])
        hits = [i for i, o in enumerate(objects) if (o["kind"], o["metadata"]["name"]) == key]
        if len(hits) != 1:
            raise ValueError(f"{folder}: patch {patch['path']} matches {len(hits)} objects")
        objects[hits[0]] = _merge(objects[hits[0]], body)
    for obj in objects:
        if "namespace" in kust and obj["kind"] != "Namespace":
            obj["metadata"]["namespace"] = kust["namespace"]
        _images(obj, kust.get("images", []))
    return objects


def render_kubectl(folder: Path) -> list[dict] | None:
    """``kubectl kustomize folder``, or None without kubectl."""
    if shutil.which("kubectl") is None:
        return None
    out = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return [o for o in yaml.safe_load_all(out) if o]


def render(folder: Path) -> list[dict]:
    return render_kubectl(folder) or render_python(folder)


def by_key(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}
