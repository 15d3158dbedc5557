"""API tokens: only a SHA-256 hash is stored; the secret is shown once, at creation."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.store import models as m
from backend.store.records import TokenRecord

if TYPE_CHECKING:
    from backend.store.hot_reads import HotReads

PREFIX = "ob_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _record(row: m.ApiToken) -> TokenRecord:
    return TokenRecord(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at,
                       last_used_at=row.last_used_at, revoked_at=row.revoked_at)


def create_token(session: Session, *, name: str) -> tuple[TokenRecord, str]:
    secret = PREFIX + secrets.token_urlsafe(32)
    row = m.ApiToken(name=name, token_hash=hash_token(secret), prefix=secret[:10])
    session.add(row)
    session.flush()
    return _record(row), secret


def verify_token(session: Session, *, token: str) -> TokenRecord | None:
    def by_hash(token_hash: str) -> TokenRecord | None:
        row = session.scalar(select(m.ApiToken).where(m.ApiToken.token_hash == token_hash))
        return None if row is None else _record(row)

    return _verified(token, by_hash)


def verify_token_hot(reads: HotReads, *, token: str) -> TokenRecord | None:
    """verify_token without the ORM: the check every authenticated request makes."""
    return _verified(token, reads.token)


def _verified(token: str, by_hash: Callable[[str], TokenRecord | None]) -> TokenRecord | None:
    """The token's record if it exists and is not revoked; both lookups share this rule."""
    if not token or len(token) > 200:
        return None
    record = by_hash(hash_token(token))
    return record if record is not None and record.revoked_at is None else None


def revoke_token(session: Session, *, token_id: int) -> bool:
    result = session.execute(
        update(m.ApiToken).where(m.ApiToken.id == token_id, m.ApiToken.revoked_at.is_(None))
        .values(revoked_at=m.utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def list_tokens(session: Session) -> list[TokenRecord]:
    return [_record(r) for r in session.scalars(select(m.ApiToken).order_by(m.ApiToken.id))]
