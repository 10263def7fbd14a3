#!/usr/bin/env python3
"""Render a kustomization offline, for CI machines without kubectl/kustomize.

Supports exactly what deploy/kubernetes uses, and refuses anything else:
  resources  files (multi-document YAML) and directories (kustomizations)
  components directories of kind Component: their resources join the
             accumulated ones, then their patches apply to all of them,
             before the including kustomization's own patches and images
  images     name -> newName / newTag / digest, on (init)containers' images
  patches    from `path:` or inline `patch:`; a list of RFC 6902 operations
             (add, remove, replace, test) with `target:` (kind, name), or a
             strategic-merge patch of the form `$patch: delete`
Usage: render_kustomize.py DIR [-o FILE]   (needs PyYAML)
"""

import argparse
import copy
import os
import sys

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KNOWN_KEYS = {"apiVersion", "kind", "resources", "components", "images", "patches"}


class RenderError(Exception):
    pass


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def res_id(r):
    md = r.get("metadata") or {}
    return (r.get("apiVersion"), r.get("kind"), md.get("namespace"), md.get("name"))


def render(directory, stack=(), accumulated=None):
    """Renders a Kustomization, or (with `accumulated`) applies a Component
    to the resources accumulated so far."""
    directory = os.path.realpath(directory)
    for visited in stack:
        if visited == directory or visited.startswith(directory + os.sep):
            raise RenderError(f"cycle: {directory} contains {visited}")
    kfile = next(
        (os.path.join(directory, n) for n in KUSTOMIZATION_FILES
         if os.path.isfile(os.path.join(directory, n))),
        None,
    )
    if kfile is None:
        raise RenderError(f"{directory}: no kustomization.yaml")
    docs = load_docs(kfile)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise RenderError(f"{kfile}: expected one mapping")
    k = docs[0]
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise RenderError(f"{kfile}: unsupported fields {sorted(unknown)}")
    kind = k.get("kind", "Kustomization")
    want = "Component" if accumulated is not None else "Kustomization"
    if kind != want:
        raise RenderError(f"{kfile}: kind must be {want} here, not {kind}")

    resources = list(accumulated or [])
    for entry in k.get("resources") or []:
        p = os.path.join(directory, entry)
        if os.path.isdir(p):
            resources += render(p, stack + (directory,))
        elif os.path.isfile(p):
            resources += load_docs(p)
        else:
            raise RenderError(f"{kfile}: resource {entry} not found")
    seen = set()
    for r in resources:
        if res_id(r) in seen:
            raise RenderError(f"{kfile}: duplicate resource {res_id(r)}")
        seen.add(res_id(r))

    for entry in k.get("components") or []:
        p = os.path.join(directory, entry)
        if not os.path.isdir(p):
            raise RenderError(f"{kfile}: component {entry} is not a directory")
        resources = render(p, stack + (directory,), accumulated=resources)

    for i, p in enumerate(k.get("patches") or []):
        resources = apply_patch(resources, p, directory, f"{kfile}: patches[{i}]")
    for img in k.get("images") or []:
        apply_image(resources, img, kfile)
    return resources


# ---- images -----------------------------------------------------------------

def split_image(image):
    name, digest = (image.split("@", 1) + [None])[:2]
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    return name, tag, digest


def apply_image(resources, img, where):
    unknown = set(img) - {"name", "newName", "newTag", "digest"}
    if unknown or "name" not in img:
        raise RenderError(f"{where}: images entry {img}: unsupported fields")
    for r in resources:
        for c in pod_containers(r):
            name, tag, digest = split_image(c.get("image", ""))
            if name != img["name"]:
                continue
            name = img.get("newName", name)
            if "digest" in img:
                ref = f"@{img['digest']}"
            elif "newTag" in img:
                ref = f":{img['newTag']}"
            else:
                ref = (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
            c["image"] = name + ref


def pod_containers(r):
    spec = r.get("spec") or {}
    if r.get("kind") == "Pod":
        pod = spec
    elif r.get("kind") == "CronJob":
        pod = spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    else:
        pod = (spec.get("template") or {}).get("spec")
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from (pod or {}).get(key) or []


# ---- patches ----------------------------------------------------------------

def apply_patch(resources, p, directory, where):
    unknown = set(p) - {"path", "patch", "target"}
    if unknown or ("path" in p) == ("patch" in p):
        raise RenderError(f"{where}: needs exactly one of path/patch, and only target besides")
    if "path" in p:
        body = load_docs(os.path.join(directory, p["path"]))
        body = body[0] if len(body) == 1 else body
    else:
        body = yaml.safe_load(p["patch"])

    if isinstance(body, list):  # RFC 6902
        target = p.get("target")
        if not target or set(target) - {"kind", "name"}:
            raise RenderError(f"{where}: a JSON patch needs a target with kind/name only")
        def matches(r):
            return (target.get("kind", r.get("kind")) == r.get("kind")
                    and target.get("name", res_id(r)[3]) == res_id(r)[3])
        if not any(matches(r) for r in resources):
            raise RenderError(f"{where}: target {target} matches no resource")
        return [json_patch(r, body, where) if matches(r) else r for r in resources]

    if isinstance(body, dict) and body.get("$patch") == "delete":
        if set(body) - {"apiVersion", "kind", "metadata", "$patch"} or set(body["metadata"]) - {"name", "namespace"}:
            raise RenderError(f"{where}: only whole-resource `$patch: delete` is supported")
        want = res_id(body)
        out = [r for r in resources if res_id(r) != want]
        if len(out) != len(resources) - 1:
            raise RenderError(f"{where}: {want} matches no resource")
        return out
    raise RenderError(f"{where}: unsupported patch (only RFC 6902 lists and `$patch: delete`)")


def pointer(path):
    if not path.startswith("/"):
        raise RenderError(f"bad JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def json_patch(doc, ops, where):
    doc = copy.deepcopy(doc)
    for n, op in enumerate(ops):
        kind = op.get("op")
        if kind not in ("add", "remove", "replace", "test"):
            raise RenderError(f"{where}: op {n}: unsupported op {kind!r}")
        *parents, last = pointer(op["path"])
        node = doc
        try:
            for t in parents:
                node = node[int(t)] if isinstance(node, list) else node[t]
            if isinstance(node, list):
                idx = len(node) if (last == "-" and kind == "add") else int(last)
                if not 0 <= idx <= len(node) - (kind != "add"):
                    raise IndexError(idx)
            elif kind != "add" and last not in node:
                raise KeyError(last)
        except (KeyError, IndexError, ValueError, TypeError):
            raise RenderError(f"{where}: op {n} ({kind} {op['path']}): path does not exist") from None
        key = idx if isinstance(node, list) else last
        if kind == "test":
            if node[key] != op["value"]:
                raise RenderError(f"{where}: op {n}: test {op['path']} == {op['value']!r} failed (is {node[key]!r})")
        elif kind == "remove":
            del node[key]
        elif kind == "replace":
            node[key] = copy.deepcopy(op["value"])
        elif isinstance(node, list):
            node.insert(key, copy.deepcopy(op["value"]))
        else:
            node[key] = copy.deepcopy(op["value"])
    return doc


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir")
    ap.add_argument("-o", "--output")
    a = ap.parse_args()
    try:
        text = yaml.safe_dump_all(render(a.dir), sort_keys=True, default_flow_style=False)
    except RenderError as e:
        sys.exit(f"render_kustomize: {e}")
    if a.output:
        with open(a.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
