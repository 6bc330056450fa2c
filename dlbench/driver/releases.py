"""Any release on demand: `--frameworks torch@2.15.0` runs torch's adapter in an environment built for
that release, so that "did upgrading make it faster?" is one command.

A framework declares the releases its adapter supports in its registry entry (frameworks.Framework:
`releases`, a PEP 440 range, and `pinned`, the distributions the release number pins). A spec outside
the range, of a framework that declares none, or malformed, is refused before anything is built.
Then, per spec:
1. The requirements: the pinned distributions at the release, the framework's other distributions
   (the newest the resolver finds compatible), numpy at the version of the framework's own environment
   (only the release changes), on that environment's Python.
2. Resolve them with uv into a hashed lock, cached under .venv-releases/locks/ by the requirements'
   SHA-256 (the second call resolves nothing and needs no network). A release that does not exist, or
   an index that cannot be reached, is one line and exit status 2.
3. Build the environment from the lock, cached under .venv-releases/NAME-VERSION-KEY/ where KEY is the
   lock's SHA-256: the same resolved lock reuses the same environment. A build that fails leaves no
   environment, and its rows are `unavailable` with the reason.
The variant joins the registry as the framework "NAME@VERSION" (its own Environment), so that run, speed,
parity, the report and compare treat releases of one framework as frameworks; each row
records the versions its worker imported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from dlbench import files
from dlbench.driver import children
from dlbench.driver.config import UsageError
from frameworks import ALIASES, ENVIRONMENTS, FRAMEWORKS, ROOT, Environment, Framework

_SPEC = re.compile(r"(?P<framework>[A-Za-z0-9][A-Za-z0-9_-]*)@(?P<version>[^@\s,]+)")


def root() -> Path:
    """Where release environments live (DLBENCH_RELEASES_DIR, else .venv-releases in the clone)."""
    return Path(os.environ.get("DLBENCH_RELEASES_DIR") or ROOT / ".venv-releases")


@dataclass(frozen=True)
class Release:
    """One requested release of one registered framework."""

    framework: str
    version: str

    @property
    def name(self) -> str:
        return f"{self.framework}@{self.version}"


def is_spec(item: str) -> bool:
    return "@" in item


def parse(item: str, registry: dict[str, Framework] = FRAMEWORKS) -> Release:
    """A NAME@VERSION item, checked against the framework's declared range; UsageError otherwise."""
    m = _SPEC.fullmatch(item)
    if not m:
        raise UsageError(f"{item[:80]!r} is not a release: write NAME@VERSION, e.g. torch@2.15.0")
    name, version = m["framework"], m["version"]
    fw = registry.get(name)
    if fw is None:
        raise UsageError(f"unknown framework {name!r} in {item!r}: choose from {', '.join(registry)}")
    if not fw.releases:
        raise UsageError(f"{name} declares no releases besides its locked one: run it as {name}")
    try:
        v = Version(version)
    except InvalidVersion:
        raise UsageError(f"{version[:40]!r} is not a version (PEP 440) in {item!r}: e.g. {name}@2.15.0") from None
    try:
        supported = SpecifierSet(fw.releases)
    except InvalidSpecifier:  # a registry mistake, said as one line all the same
        raise UsageError(f"{name} declares releases {fw.releases!r}, not a PEP 440 range: fix frameworks/") from None
    if v not in supported:
        raise UsageError(f"{item}: {name}'s adapter supports releases {fw.releases}; choose one in that range")
    return Release(name, str(v))


def _python_version(python: Path) -> str:
    code = "import sys, numpy; print('%d.%d' % sys.version_info[:2], numpy.__version__)"
    out = children.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise UsageError(f"{python} cannot run with numpy: rebuild its environment with `make setup`")
    return out.stdout.strip()


def requirements(fw: Framework, version: str, numpy: str) -> str:
    """The release environment's requirements (.in text): pins, the framework's other distributions, numpy."""
    lines = [f"# {fw.name}@{version}: built by harness.py (dlbench/driver/releases.py)"]
    lines += [f"{d}=={version}" for d in fw.pinned]
    lines += [d for d in (*fw.distributions, *fw.release_extras) if d not in fw.pinned]
    lines.append(f"numpy=={numpy}")  # the framework's own environment's: only the release changes
    return "\n".join(dict.fromkeys(lines)) + "\n"


def key(text: str) -> str:
    """A cache key: the first 16 hex digits of the SHA-256 of a requirements or lock text, comments left out
    (uv's header names the paths it was run with: the same resolution in another clone is the same key)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _uv() -> str:
    for candidate in (ROOT / ".uv" / "bin" / "uv", shutil.which("uv")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise UsageError("uv is needed to build a release's environment: run `make setup` (it installs uv in .uv/)")


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    links = env.get("UV_FIND_LINKS") or env.get("PIP_FIND_LINKS")
    if links:  # wheels kept on this machine (a CPU build of torch), offered to uv as to pip
        env["UV_FIND_LINKS"] = links
    return env


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("hint:")]
    return files.one_line(" ".join(lines[:3]) if lines else "no message")[:300]


def resolve(rel: Release, fw: Framework, base: Environment) -> tuple[Path, str, float | None]:
    """The release's lock (resolved once, then cached by its requirements), the Python version it is for,
    and the seconds the resolution took (None: the cached lock)."""
    if not base.python.exists():
        raise UsageError(
            f"{rel.name} is built on {fw.name}'s environment {base.venv}, which does not exist: {base.missing_hint}"
        )
    pyver, numpy = _python_version(base.python).split()
    text = requirements(fw, rel.version, numpy)
    locks = root() / "locks"
    lock = locks / f"{rel.framework}-{rel.version}-py{pyver}-{key(text + pyver)}.lock"
    if lock.exists():
        return lock, pyver, None
    start = time.monotonic()
    locks.mkdir(parents=True, exist_ok=True)
    spec = lock.with_suffix(".in")
    files.write_whole(spec, text)
    r = children.run(
        [
            _uv(),
            "pip",
            "compile",
            "--quiet",
            "--generate-hashes",
            "--python-version",
            pyver,
            str(spec),
            "-o",
            str(lock) + ".part",
        ],
        capture_output=True,
        text=True,
        env=_uv_env(),
        timeout=900,
    )
    if r.returncode != 0:
        Path(str(lock) + ".part").unlink(missing_ok=True)
        raise UsageError(
            f"{rel.name} cannot be resolved for Python {pyver} ({_last_line(r.stderr)}): check that "
            f"the release exists (uv pip compile or pip index versions) and that this machine "
            f"reaches the package index"
        )
    os.replace(str(lock) + ".part", lock)
    return lock, pyver, time.monotonic() - start


def build(rel: Release, lock: Path, base: Environment) -> tuple[Environment, float | None, str | None]:
    """The release's environment from its lock: reused where one was built from the same lock; else built
    (seconds taken), or (environment, None, why) where the build failed and no environment is left."""
    venv = root() / f"{rel.framework}-{rel.version}-{key(lock.read_text())}"
    rel_venv = os.path.relpath(venv, ROOT)
    env = Environment(rel_venv, str(lock), missing_hint=f"its build failed: run --frameworks {rel.name} to see why")
    if (venv / ".stamp").exists():
        return env, 0.0, None
    start = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    steps = (
        [_uv(), "venv", "--quiet", "--python", str(base.python.resolve()), str(venv)],
        [_uv(), "pip", "sync", "--quiet", "--require-hashes", "--python", str(venv / "bin" / "python"), str(lock)],
    )
    for argv in steps:
        r = children.run(argv, capture_output=True, text=True, env=_uv_env(), timeout=3600)
        if r.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            return env, None, f"could not install {rel.name} ({_last_line(r.stderr)})"
    took = time.monotonic() - start
    stamp = {
        "lock": os.path.relpath(lock, ROOT),
        "sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
        "built_s": round(took, 1),
    }
    files.write_whole(venv / ".stamp", json.dumps(stamp) + "\n")
    return env, took, None


def register(
    value: str, registry: dict[str, Framework] = FRAMEWORKS, environments: dict[str, Environment] = ENVIRONMENTS
) -> None:
    """Make every NAME@VERSION item of a --frameworks value a registered framework with its own environment,
    resolving and building what is not cached; every spec is checked before anything is built."""
    items = [v.strip() for v in value.split(",")]
    unknown = [v for v in items if not is_spec(v) and v not in registry and v not in ALIASES]
    if unknown:  # said now, not after minutes of building the releases beside it
        raise UsageError(f"unknown framework {unknown[0][:80]!r}: choose from {', '.join(registry)}")
    releases = [parse(item, registry) for item in items if is_spec(item)]
    for rel in releases:
        if rel.name in registry:
            continue
        fw = registry[rel.framework]
        base = environments[fw.env]
        lock, pyver, resolved_s = resolve(rel, fw, base)
        env, took, why = build(rel, lock, base)
        lock_said = "lock reused" if resolved_s is None else f"resolved in {resolved_s:.0f} s"
        if why:
            print(f"warning: {why}: its rows will be 'unavailable'", file=sys.stderr)
        elif took:
            print(
                f"{rel.name}: {lock_said}, environment {env.venv} built in {took:.0f} s (Python {pyver})",
                file=sys.stderr,
            )
        else:
            print(f"{rel.name}: {lock_said}, environment {env.venv} reused (Python {pyver})", file=sys.stderr)
        environments[rel.name] = env
        registry[rel.name] = dataclasses.replace(
            fw, name=rel.name, env=rel.name, description=f"{fw.description}, release {rel.version}"
        )
