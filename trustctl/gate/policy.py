"""The gate's policy: which trust server and signers vouch for which images.

A YAML file, validated on load with line-numbered errors::

    version: 1
    unmatched: deny            # or allow: images no rule matches
    servers:
      main: {url: "https://notary:4443", tls_ca: /etc/gate/ca.pem}
    rules:
      - pattern: "registry.example.com/team/**"
        server: main
        gun: "{registry}/{repository}"   # the trust repository (GUN) for an image
        signers: [alice]                 # delegated roles that must have signed
        root: roots/team.json            # the root the repositories are pinned to
        mode: enforce                    # enforce | warn | verify-only
      - pattern: "docker.example.com/legacy/app"   # a Notary (Docker Content Trust) one
        server: main
        root_keyid: 6f1c...              # its root certificate id (or root_ca: ca.pem)

Patterns match *parsed* references, never substrings: a pattern is split like an
image reference (``docker.io`` and ``library/`` normalisation included) into the
registry and the repository's components; ``*`` matches within one component (within one DNS label in the registry host),
``**`` any number of whole components, and an optional ``:TAG`` glob matches the
tag. The most specific matching rule wins (more literal components, then more
literal characters, then a tag pattern); ties go to the earlier rule.

A rule pins its repositories' root as ``trustctl trust pin`` does: ``root`` is a
root.json from the owner (TUF 1.0's, pinned as it is; or a Notary one, pinned by its
root certificate ids), ``root_keyid`` the root certificate id(s) of a Notary
repository (``--keyid``), ``root_ca`` a CA bundle that issued its root certificate
(``--ca-bundle``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from trustctl.errors import InvalidReferenceError, TrustctlError
from trustctl.notary.model import parse_root as parse_notary_root
from trustctl.notary.pinning import NotaryPin
from trustctl.notary.updater import is_notary_root
from trustctl.reference import DEFAULT_REGISTRY, ImageRef, parse_reference
from trustctl.rootchain import parse_root

__all__ = ["MODES", "Pattern", "Policy", "PolicyError", "Rule", "Server", "load_policy"]

MODES = ("enforce", "warn", "verify-only")
_SCALAR_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int")


class PolicyError(ValueError):
    """The policy file is not valid; the message names the file and line."""


@dataclass(frozen=True)
class Pattern:
    """A parsed image pattern: registry and repository components, optional tag glob."""

    text: str
    components: tuple[str, ...]  # registry first, then repository components
    tag: str | None = None

    @classmethod
    def parse(cls, text: str) -> Pattern:
        if not text or text != text.strip() or "@" in text or "://" in text:
            raise ValueError(f"pattern {text!r}: give REGISTRY/REPOSITORY[:TAG] globs")
        name, tag = text, None
        last_slash, colon = text.rfind("/"), text.rfind(":")
        if colon > last_slash:
            name, tag = text[:colon], text[colon + 1 :]
            if not tag:
                raise ValueError(f"pattern {text!r}: empty tag")
        parts = name.split("/")
        if any(not p for p in parts):
            raise ValueError(f"pattern {text!r}: empty component")
        if parts[0] == "**" or (_is_registry(parts[0]) and len(parts) > 1):
            comps = tuple(parts)
        elif len(parts) == 1:
            comps = (DEFAULT_REGISTRY, "library", parts[0])
        else:
            comps = (DEFAULT_REGISTRY, *parts)
        for c in comps:
            if "**" in c and c != "**":
                raise ValueError(f"pattern {text!r}: ** must be a whole component")
            if any(ch in c for ch in "[]?"):
                raise ValueError(f"pattern {text!r}: only * and ** are wildcards")
        return cls(text, comps, tag)

    def matches(self, ref: ImageRef) -> bool:
        comps = (ref.registry, *ref.repository.split("/"))
        if not _match(self.components, comps):
            return False
        if self.tag is None:
            return True
        return ref.tag is not None and _glob(self.tag, ref.tag)

    @property
    def specificity(self) -> tuple[int, int, int]:
        literal = sum(1 for c in self.components if "*" not in c)
        chars = sum(len(c.replace("*", "")) for c in self.components)
        tag = 0 if self.tag is None else 1 + len(self.tag.replace("*", ""))
        return (literal, chars, tag)


def _is_registry(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


@lru_cache(maxsize=4096)
def _regex(glob: str, host: bool) -> re.Pattern[str]:
    # * never crosses a component (nor, in the registry host, a DNS label)
    return re.compile(fnmatch.translate(glob).replace(".*", "[^./:]*" if host else "[^/]*"))


def _glob(glob: str, text: str, host: bool = False) -> bool:
    if "*" not in glob:
        return glob == text
    return _regex(glob, host).fullmatch(text) is not None


def _match(pattern: Sequence[str], comps: Sequence[str], first: bool = True) -> bool:
    if not pattern:
        return not comps
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, comps[i:], False) for i in range(len(comps) + 1))
    return bool(comps) and _glob(head, comps[0], first) and _match(rest, comps[1:], False)


@dataclass(frozen=True)
class Server:
    name: str
    url: str
    tls_ca: str | None = None


@dataclass(frozen=True)
class Rule:
    pattern: Pattern
    server: str
    gun: str = "{registry}/{repository}"
    signers: tuple[str, ...] = ()
    mode: str = "enforce"
    line: int = 0
    #: What this rule's repositories are pinned to: a TUF 1.0 root.json, or the pin of
    #: a Notary repository (root certificate ids or a CA).
    root: bytes | NotaryPin | None = None
    root_source: str = ""

    def gun_for(self, ref: ImageRef) -> str:
        return self.gun.format(registry=ref.registry, repository=ref.repository)


@dataclass(frozen=True)
class Policy:
    servers: Mapping[str, Server]
    rules: tuple[Rule, ...]
    unmatched: str = "deny"
    generation: int = 0
    source: str = "<policy>"
    _order: tuple[Rule, ...] = field(default=(), repr=False)

    def rule_for(self, ref: ImageRef) -> Rule | None:
        """The most specific rule matching ``ref`` (earlier wins a tie), or None."""
        best: Rule | None = None
        for rule in self.rules:
            if rule.pattern.matches(ref) and (
                best is None or rule.pattern.specificity > best.pattern.specificity
            ):
                best = rule
        return best


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node | None, message: str) -> PolicyError:
        line = node.start_mark.line + 1 if node is not None else 1
        return PolicyError(f"{self.source}:{line}: {message}")

    def mapping(self, node: yaml.Node, what: str, allowed: set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode):
                raise self.fail(k, f"{what}: keys must be strings")
            if k.value in out:
                raise self.fail(k, f"{what}: {k.value!r} given twice")
            if k.value not in allowed:
                raise self.fail(
                    k, f"{what}: unknown field {k.value!r} (known: {', '.join(sorted(allowed))})"
                )
            out[k.value] = v
        return out

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag not in _SCALAR_TAGS:
            raise self.fail(node, f"{what} must be a string")
        return str(node.value)

    def seq(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)


def load_policy(
    text: str, *, source: str = "<policy>", generation: int = 0, base: Path | None = None
) -> Policy:
    """Parse and validate a policy document.

    Args:
        base: the directory relative ``root`` paths are read from.

    Raises:
        PolicyError: invalid YAML or an invalid field, naming ``source`` and the line.
    """
    c = _Checker(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise PolicyError(f"{source}:{line}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if root is None:
        raise PolicyError(f"{source}:1: the policy is empty")
    top = c.mapping(root, "the policy", {"version", "unmatched", "servers", "rules"})
    if "version" not in top or c.scalar(top["version"], "version") != "1":
        raise c.fail(top.get("version", root), "version must be 1")
    unmatched = c.scalar(top["unmatched"], "unmatched") if "unmatched" in top else "deny"
    if unmatched not in ("deny", "allow"):
        raise c.fail(top["unmatched"], "unmatched must be deny or allow")
    servers: dict[str, Server] = {}
    if "servers" in top:
        for k, v in c.mapping(top["servers"], "servers", _AnyKey()).items():
            f = c.mapping(v, f"server {k}", {"url", "tls_ca"})
            if "url" not in f:
                raise c.fail(v, f"server {k}: url is required")
            url = c.scalar(f["url"], f"server {k}: url")
            if not url.startswith(("https://", "http://")):
                raise c.fail(f["url"], f"server {k}: url must start with https://")
            tls_ca = c.scalar(f["tls_ca"], f"server {k}: tls_ca") if "tls_ca" in f else None
            servers[k] = Server(k, url, tls_ca)
    rules: list[Rule] = []
    for node in c.seq(top["rules"], "rules") if "rules" in top else []:
        f = c.mapping(
            node,
            "rule",
            {"pattern", "server", "gun", "signers", "mode", "root", "root_keyid", "root_ca"},
        )
        for required in ("pattern", "server"):
            if required not in f:
                raise c.fail(node, f"rule: {required} is required")
        try:
            pattern = Pattern.parse(c.scalar(f["pattern"], "rule: pattern"))
        except ValueError as e:
            raise c.fail(f["pattern"], str(e)) from None
        server = c.scalar(f["server"], "rule: server")
        if server not in servers:
            raise c.fail(f["server"], f"rule: server {server!r} is not defined under servers")
        gun = c.scalar(f["gun"], "rule: gun") if "gun" in f else Rule.gun
        try:
            probe = gun.format(registry="r.example", repository="a/b")
            parse_reference(probe, allow_tag=False, allow_digest=False)
        except (KeyError, IndexError, ValueError, InvalidReferenceError) as e:
            raise c.fail(
                f["gun"],
                f"rule: gun {gun!r} must name a repository using "
                f"{{registry}} and {{repository}} ({e})",
            ) from None
        signers = (
            tuple(c.scalar(s, "rule: signers[]") for s in c.seq(f["signers"], "rule: signers"))
            if "signers" in f
            else ()
        )
        mode = c.scalar(f["mode"], "rule: mode") if "mode" in f else "enforce"
        if mode not in MODES:
            raise c.fail(f["mode"], f"rule: mode must be one of {', '.join(MODES)}")
        root, root_source = _root_pin(c, f, pattern, base)
        rules.append(
            Rule(pattern, server, gun, signers, mode, node.start_mark.line + 1, root, root_source)
        )
    return Policy(servers, tuple(rules), unmatched, generation, source)


def _root_pin(
    c: _Checker, f: Mapping[str, yaml.Node], pattern: Pattern, base: Path | None
) -> tuple[bytes | NotaryPin | None, str]:
    """A rule's ``root``, ``root_keyid`` or ``root_ca`` (at most one), and its source.

    Raises:
        PolicyError: more than one, an unreadable file, not a root, a malformed id.
    """
    given = [k for k in ("root", "root_keyid", "root_ca") if k in f]
    if not given:
        return None, ""
    if len(given) > 1:
        second = sorted(given, key=lambda k: f[k].start_mark.line)[1]
        raise c.fail(f[second], "rule: give only one of root, root_keyid, root_ca")
    field_name = given[0]
    node = f[field_name]
    if field_name == "root_keyid":
        ids = (
            [c.scalar(n, "rule: root_keyid[]") for n in c.seq(node, "rule: root_keyid")]
            if isinstance(node, yaml.SequenceNode)
            else [c.scalar(node, "rule: root_keyid")]
        )
        try:
            return NotaryPin.by_cert_ids(ids), "root certificate id " + ", ".join(ids)
        except TrustctlError as e:
            raise c.fail(node, f"rule: root_keyid: {e}") from None
    source = c.scalar(node, f"rule: {field_name}")
    path = Path(source)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        data = path.read_bytes()
    except OSError as e:
        raise c.fail(node, f"rule: {field_name} {source!r} cannot be read: {e.strerror}") from None
    try:
        if field_name == "root_ca":
            return NotaryPin.by_ca(data, source), source
        if is_notary_root(data):  # pinned by its root certificate ids, as `trust pin` does
            return NotaryPin.by_cert_ids(parse_notary_root(data).roles["root"].keyids), source
        parse_root(data, what=f"the root of rule {pattern.text!r}")
    except TrustctlError as e:
        raise c.fail(node, f"rule: {field_name} {source!r}: {e}") from None
    return data, source


class _AnyKey(set[str]):
    def __contains__(self, item: object) -> bool:
        return True
