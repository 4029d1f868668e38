"""Where an image can hide in a Kubernetes object, as JSON Pointer paths.

Every pod spec carries images in ``containers``, ``initContainers`` (native sidecars
too), ``ephemeralContainers`` and image volumes (``volumes[].image.reference``). The pod
spec sits at a different place per kind; a kind the gate does not know is refused
rather than guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ImageSite", "UnknownKind", "find_images", "is_terminating", "pod_spec_path"]

_TEMPLATE = ("spec", "template", "spec")
POD_SPEC_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): ("spec",),
    ("", "PodTemplate"): ("template", "spec"),
    ("", "ReplicationController"): _TEMPLATE,
    ("apps", "Deployment"): _TEMPLATE,
    ("apps", "ReplicaSet"): _TEMPLATE,
    ("apps", "StatefulSet"): _TEMPLATE,
    ("apps", "DaemonSet"): _TEMPLATE,
    ("batch", "Job"): _TEMPLATE,
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


class UnknownKind(ValueError):
    """A kind whose pod spec the gate does not know (refused, never guessed)."""


@dataclass(frozen=True)
class ImageSite:
    """One image reference and where it sits (``/spec/containers/0/image``)."""

    path: str
    image: str
    container: str


def pod_spec_path(group: str, kind: str) -> tuple[str, ...]:
    try:
        return POD_SPEC_PATHS[(group, kind)]
    except KeyError:
        raise UnknownKind(
            f"kind {group + '/' if group else ''}{kind} is not one the gate checks"
        ) from None


def _pointer(parts: tuple[str | int, ...]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def find_images(obj: Mapping[str, Any], group: str, kind: str) -> list[ImageSite]:
    """Every image reference in ``obj``. A non-string image is reported as ``""`` (denied).

    Raises:
        UnknownKind: the kind is not one whose pod spec the gate knows.
    """
    path = pod_spec_path(group, kind)
    spec: Any = obj
    for part in path:
        spec = spec.get(part) if isinstance(spec, Mapping) else None
        if spec is None:
            return []
    if not isinstance(spec, Mapping):
        return []
    sites: list[ImageSite] = []
    for list_name in CONTAINER_LISTS:
        items = spec.get(list_name) or []
        if not isinstance(items, list):
            sites.append(ImageSite(_pointer((*path, list_name)), "", list_name))
            continue
        for i, c in enumerate(items):
            image = c.get("image") if isinstance(c, Mapping) else None
            name = c.get("name", "") if isinstance(c, Mapping) else ""
            if image is None and list_name != "ephemeralContainers" and isinstance(c, Mapping):
                continue  # no image: the API server refuses the object itself
            sites.append(
                ImageSite(
                    _pointer((*path, list_name, i, "image")),
                    image if isinstance(image, str) else "",
                    f"{list_name}[{name}]",
                )
            )
    volumes = spec.get("volumes") or []
    for i, v in enumerate(volumes if isinstance(volumes, list) else []):
        src = v.get("image") if isinstance(v, Mapping) else None
        if src is None:
            continue
        ref = src.get("reference") if isinstance(src, Mapping) else None
        name = v.get("name", "")
        sites.append(
            ImageSite(
                _pointer((*path, "volumes", i, "image", "reference")),
                ref if isinstance(ref, str) else "",
                f"volumes[{name}]",
            )
        )
    return sites


def is_terminating(obj: Mapping[str, Any] | None) -> bool:
    """Whether the object carries a deletionTimestamp (being deleted: finalizers run)."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return isinstance(meta, Mapping) and bool(meta.get("deletionTimestamp"))
