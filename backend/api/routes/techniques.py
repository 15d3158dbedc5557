"""What can be launched (the run spec's JSON schema and defaults, for the launch form) and the
shared vocabulary the dashboard reads instead of keeping copies."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import Authenticated
from runspec import vocabulary
from runspec.datasets import missing_files
from runspec.spec import ARCHITECTURES, BUILTIN_DATASETS, RunSpec
from runspec.sweeps import SweepIn
from runspec.vocabulary import EXPORT_FORMATS

router = APIRouter(prefix="/api", tags=["techniques"], dependencies=Authenticated)


@router.get("/techniques")
def read_techniques() -> dict[str, Any]:
    """The RunSpec JSON schema, its defaults, and the technique, dataset and export names."""
    schema = RunSpec.model_json_schema()
    techniques = {}
    for name, sub in schema.get("$defs", {}).items():
        props = sub.get("properties", {})
        tname = props.get("name", {}).get("const")
        if tname and name.endswith("Spec") and "name" in sub.get("required", []):
            techniques[tname] = sub
    return {
        "schema": schema,
        "sweep_schema": SweepIn.model_json_schema(),
        "defaults": RunSpec().model_dump(mode="json"),
        "techniques": techniques,
        "datasets": list(BUILTIN_DATASETS) + ["upload"],
        # which built-in datasets this server has, and why not (the launch form marks them)
        "dataset_availability": _dataset_availability(),
        "architectures": list(ARCHITECTURES),
        "exports": list(EXPORT_FORMATS),
    }


def _dataset_availability() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in BUILTIN_DATASETS:
        folder, missing = missing_files(name)
        out[name] = {
            "available": not missing,
            "reason": f"not on this server: {', '.join(missing)} missing in {folder}" if missing else None,
            "missing": list(missing),
            "folder": str(folder),
        }
    return out


@router.get("/vocabulary")
def read_vocabulary() -> dict[str, Any]:
    """Run statuses (and which are terminal or retryable), export and variant formats, the headline
    rule, chart x axes and the id bound: the dashboard's single source for these."""
    return vocabulary.as_dict()
