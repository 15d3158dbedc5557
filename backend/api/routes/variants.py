"""Variants: the measured models of a run, and their files."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from backend.api.deps import Authenticated, Id, SessionDep, SettingsDep
from backend.api.schemas import VariantPublic, VariantsPublic
from backend.core.errors import Conflict, NotFound
from backend.store import runs, variants

router = APIRouter(prefix="/api", tags=["variants"], dependencies=Authenticated)


@router.get("/runs/{run_id}/variants")
def read_variants(run_id: Id, session: SessionDep) -> VariantsPublic:
    """Every model the run produced, with accuracy, size and latency."""
    if runs.get_run(session, run_id=run_id) is None:
        raise NotFound(f"run {run_id} not found")
    records = variants.list_variants(session, run_ids=[run_id])
    return VariantsPublic(data=[VariantPublic.of(v) for v in records], count=len(records))


@router.get("/variants/{variant_id}")
def read_variant(variant_id: Id, session: SessionDep) -> VariantPublic:
    """One variant."""
    v = variants.get_variant(session, variant_id=variant_id)
    if v is None:
        raise NotFound(f"variant {variant_id} not found")
    return VariantPublic.of(v)


@router.get(
    "/variants/{variant_id}/download",
    response_class=FileResponse,
    responses={
        404: {"description": "no such variant, or its file is missing"},
        409: {"description": "the file is not the one stored (SHA-256 mismatch): the variant is marked damaged"},
    },
)
def download_variant(variant_id: Id, session: SessionDep, settings: SettingsDep) -> FileResponse:
    """The variant's model file, after its SHA-256 matched the digest stored with it."""
    v = variants.get_variant(session, variant_id=variant_id)
    if v is None:
        raise NotFound(f"variant {variant_id} not found")
    try:
        path = variants.verified_file(session, variant=v, root=settings.artifacts)
    except variants.ArtifactUnavailable as e:
        session.commit()  # keep the damage mark (the request's unit of work rolls back on errors)
        raise (Conflict if e.damaged else NotFound)(str(e)) from None
    safe_name = f"optiboard-run{v.run_id}-{v.format}{path.suffix}"
    return FileResponse(path, filename=safe_name, media_type="application/octet-stream")
