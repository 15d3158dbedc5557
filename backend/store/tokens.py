"""API tokens: only a SHA-256 hash is stored; the secret is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import RunRecord, TokenRecord

if TYPE_CHECKING:
    from backend.store.hot_reads import HotReads

PREFIX = "ob_"


def hash_token(token: str) -> str:
    """SHA-256 of the token's UTF-8 bytes as 64 hex characters (lone surrogates kept, so any
    presented string hashes and simply fails to match).
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row: m.ApiToken) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def create_token(session: Session, *, name: str) -> tuple[TokenRecord, str]:
    """A new random token (`ob_` + 43 URL-safe characters, 256 bits) named `name`: its record and
    the secret, which is shown once and never stored (only its hash).
    """
    secret = PREFIX + secrets.token_urlsafe(32)
    row = m.ApiToken(name=name, token_hash=hash_token(secret), prefix=secret[:10])
    session.add(row)
    session.flush()
    return _record(row), secret


def verify_token(session: Session, *, token: str) -> TokenRecord | None:
    """The token's record if `token` is a known, unrevoked token; None otherwise (never raises
    for any string, including empty or over 200 characters).
    """
    if not _presentable(token):
        return None
    row = session.scalar(select(m.ApiToken).where(m.ApiToken.token_hash == hash_token(token)))
    return _valid(None if row is None else _record(row))


async def verify_token_hot(reads: HotReads, *, token: str) -> TokenRecord | None:
    """verify_token without the ORM: the check every authenticated request makes."""
    return _valid(await reads.token(hash_token(token))) if _presentable(token) else None


async def verify_token_reading_run(
    reads: HotReads, *, token: str, run_id: int
) -> tuple[TokenRecord | None, RunRecord | None]:
    """verify_token_hot and the run with this id, read in the same statement (the dashboard's
    polled read); the run is only for a caller whose token verified."""
    if not _presentable(token):
        return None, None
    record, run = await reads.token_and_run(hash_token(token), run_id)
    record = _valid(record)
    return record, run if record is not None else None


# Both lookups share these rules.
def _presentable(token: str) -> bool:
    return bool(token) and len(token) <= 200


def _valid(record: TokenRecord | None) -> TokenRecord | None:
    return record if record is not None and record.revoked_at is None else None


def revoke_token(session: Session, *, token_id: int) -> bool:
    """Revokes the token with this id; False if there is none or it was already revoked."""
    result = session.execute(
        update(m.ApiToken)
        .where(m.ApiToken.id == token_id, m.ApiToken.revoked_at.is_(None))
        .values(revoked_at=m.utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_tokens(session: Session) -> list[TokenRecord]:
    """Every token's record (never the secret), oldest first."""
    return [_record(r) for r in session.scalars(select(m.ApiToken).order_by(m.ApiToken.id))]
