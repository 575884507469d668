"""Reading pip's output: which requirement ``pip install`` failed on, and why, in the
words a person needs ("no matching distribution (versions available: …)", "conflicting
dependencies with …"). Knows the messages of pip 23 to 26; falls back to pip's last ERROR
line. Also the requirement-name helpers the environment cache shares (PEP 503 names).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

REQUIREMENT_HEAD = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?(.*)$", re.S)


@dataclass(frozen=True)
class PipFailure:
    """Why ``pip install`` failed, read from its output: the requirement it names (if any)
    and a one-line reason."""

    requirement: str | None
    reason: str
    required_by: str | None = None


def explain_pip_failure(lines: Sequence[str], returncode: int = 1) -> PipFailure:
    """Read pip's output for the requirement it failed on and why. Knows the messages of
    pip 23 to 26: no matching distribution, conflicting dependencies, invalid requirement,
    failed builds (wheel, metadata); falls back to the last ERROR line."""
    text = [line.rstrip() for line in lines]
    for explain in (_invalid_requirement, _conflict, _no_matching_distribution, _build_failure):
        failure = explain(text)
        if failure is not None:
            return failure
    errors = [line for line in text if line.startswith("ERROR:")]
    last = errors[-1].removeprefix("ERROR:").strip() if errors else next(
        (line.strip() for line in reversed(text) if line.strip()),
        f"pip exited with status {returncode}")
    return PipFailure(None, last)


def canonical_name(name: str) -> str:
    """PEP 503: ``Foo.Bar_baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


_INVALID = re.compile(r"Invalid requirement: '(.*?)'(?::\s*(.*))?$")
_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have "
                       r"conflicting dependencies")
_NO_VERSION = re.compile(r"Could not find a version that satisfies the requirement (.+?) "
                         r"\(from versions: (.*)\)")
_NO_MATCH = re.compile(r"No matching distribution found for (.+)$")
_IGNORED_PYTHON = re.compile(r"Ignored the following versions that require a different python "
                             r"version: (.*)$")
_FAILED_WHEEL = re.compile(r"Failed building wheel for (\S+)")
_FAILED_BUILD = re.compile(r"^Failed to build (?!installable)(.+)$")
_SUBPROCESS_FAILED = re.compile(r"× (.+?) did not run successfully")
_COLLECTING = re.compile(r"^(?:Collecting|Processing) (\S+)(?: \(from (.+)\))?")
_NETWORK_ERRORS = ("NewConnectionError", "Failed to establish a new connection",
                   "ConnectTimeoutError", "ReadTimeoutError", "Temporary failure in name "
                   "resolution", "Name or service not known", "SSLError", "ProxyError")
_SHOWN_VERSIONS = 8


def _invalid_requirement(lines: list[str]) -> PipFailure | None:
    for line in lines:
        match = _INVALID.search(line)
        if match:
            detail = f" ({match[2].strip()})" if match[2] else ""
            return PipFailure(match[1], f"it is not a valid requirement{detail}")
    return None


def _conflict(lines: list[str]) -> PipFailure | None:
    for index, line in enumerate(lines):
        match = _CONFLICT.search(line)
        if match is None:
            continue
        names = [name.strip() for name in re.split(r", | and ", match[1]) if name.strip()]
        causes = _conflict_causes(lines[index + 1:])
        others = " and ".join(repr(name) for name in names[1:])
        reason = "conflicting dependencies" + (f" with {others}" if others else "")
        if causes:
            reason += f": {'; '.join(causes)}"
        return PipFailure(names[0] if names else None, reason)
    return None


def _conflict_causes(lines: list[str]) -> list[str]:
    causes: list[str] = []
    inside = False
    for line in lines:
        if line.strip() == "The conflict is caused by:":
            inside = True
        elif inside and line.strip():
            if not line.startswith(" "):
                break
            causes.append(line.strip())
        elif inside and causes:
            break
    return causes


def _no_matching_distribution(lines: list[str]) -> PipFailure | None:
    requirement = versions = None
    for line in lines:
        no_version = _NO_VERSION.search(line)
        if no_version:
            requirement, versions = no_version[1], no_version[2]
            continue
        no_match = _NO_MATCH.search(line)
        if no_match and requirement is None:
            requirement = no_match[1].strip()
    if requirement is None:
        return None
    # pip names a dependency with its parent: "private-helper>=2 (from mylib)"
    parent = re.search(r" \(from (.+)\)$", requirement)
    if parent is not None:
        requirement = requirement[: parent.start()]
    required_by = _required_by(lines, requirement) or (parent[1] if parent else None)
    return PipFailure(requirement, _why_no_distribution(lines, requirement, versions),
                      required_by=required_by)


def _why_no_distribution(lines: list[str], requirement: str, versions: str | None) -> str:
    network = next((line for line in lines if any(m in line for m in _NETWORK_ERRORS)), None)
    if network is not None and versions in (None, "none"):
        return ("pip could not reach the package index (check the network, a proxy, or "
                "PIP_INDEX_URL)")
    pinned = re.match(r"^[A-Za-z0-9._-]+(?:\[.*\])?\s*===?\s*([^\s,;]+)$", requirement)
    if pinned is not None:
        needs = _python_requirements(lines).get(pinned[1])
        if needs is not None:
            return (f"that version needs Python {needs}, not the environment's interpreter "
                    "(set environment.python)")
    if versions in (None, "none"):
        return "no matching distribution found (no versions at all: check the name)"
    available = [v.strip() for v in versions.split(",") if v.strip()]
    shown = ", ".join(available[-_SHOWN_VERSIONS:])
    more = "..., " if len(available) > _SHOWN_VERSIONS else ""
    return f"no matching distribution found (versions available: {more}{shown})"


def _python_requirements(lines: list[str]) -> dict[str, str]:
    """Versions pip skipped for their Requires-Python: {"2.5.0": ">=3.12"}."""
    found: dict[str, str] = {}
    for line in lines:
        match = _IGNORED_PYTHON.search(line)
        if match:
            for item in match[1].split(";"):
                version, _, rest = item.strip().partition(" Requires-Python ")
                if version and rest:
                    found[version] = rest.strip()
    return found


def _required_by(lines: list[str], requirement: str) -> str | None:
    for line in lines:
        match = _COLLECTING.match(line.strip())
        if match and match[1] == requirement and match[2]:
            return match[2].split("->")[-1].strip()
    return None


def _build_failure(lines: list[str]) -> PipFailure | None:
    stage = next((m[1] for m in map(_SUBPROCESS_FAILED.search, lines) if m), None)
    named = next((m[1] for m in map(_FAILED_WHEEL.search, lines) if m), None) or next(
        (m[1].split(",")[0].strip() for m in map(_FAILED_BUILD.match, lines) if m), None)
    if stage is None and named is None:
        return None
    requirement = named or _last_collected_before_error(lines)
    what = _stage_words(stage)
    cause = _subprocess_cause(lines)
    return PipFailure(requirement, f"{what} failed" + (f": {cause}" if cause else ""))


def _stage_words(stage: str | None) -> str:
    if stage is None or stage.startswith("Building wheel"):
        return "building it"
    if stage.startswith("Preparing metadata") or "metadata" in stage:
        return "preparing its metadata"
    if stage.startswith("Getting requirements"):
        return "getting its build requirements"
    return stage[0].lower() + stage[1:]


def _last_collected_before_error(lines: list[str]) -> str | None:
    last = None
    for line in lines:
        if "subprocess-exited-with-error" in line:
            break
        match = _COLLECTING.match(line.strip())
        if match:
            last = match[1]
    return last


def _subprocess_cause(lines: list[str]) -> str | None:
    """The last line the build printed before ``[end of output]``: usually the exception."""
    for index, line in enumerate(lines):
        if line.strip() == "[end of output]":
            before = [text.strip() for text in lines[:index] if text.strip()]
            if before and not before[-1].startswith("╰─>"):
                return before[-1]
            return None
    return None


def matching_requirement(requirements: Sequence[str], failed: str | None,
                          required_by: str | None) -> int | None:
    """The index of the spec line that ``failed`` (or the project that needed it) names."""
    for candidate in (failed, required_by):
        if candidate is None:
            continue
        for index, line in enumerate(requirements):
            if same_project(candidate, line):
                return index
    return None


def same_project(first: str, second: str) -> bool:
    name = project_name(first)
    return name is not None and name == project_name(second)


def project_name(text: str) -> str | None:
    """``Six==1.16.0`` -> ``six``; a local path as pip shows it (``./badpkg``) -> ``badpkg``."""
    text = text.strip()
    if text.startswith((".", "/")):
        text = os.path.basename(text.rstrip("/"))
    match = REQUIREMENT_HEAD.match(text)
    return canonical_name(match[1]) if match else None
