"""API keys: created once, shown once, stored as a hash, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from feedback.store import Store, now

ROLES = ("user", "admin")
PREFIX_LENGTH = 12  # "fw-" and 9 random characters: enough to find a key, useless to forge one
PUBLIC_COLUMNS = "id, name, prefix, role, rpm, rater, created_at, revoked_at"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKeys:
    def __init__(self, store: Store):
        self.store = store

    def create(
        self, name: str, role: str, rpm: int | None = None, rater: str | None = None
    ) -> tuple[dict[str, Any], str]:
        """Return the stored row and the secret; the secret itself is never stored. `rater`:
        the name the key's judgements are stored under (default `key:<id>`, see `rater_of`)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be >= 0 (0: unlimited)")
        secret = "fw-" + secrets.token_urlsafe(32)
        row = {
            "name": name,
            "prefix": secret[:PREFIX_LENGTH],
            "hash": _hash(secret),
            "role": role,
            "rpm": rpm or None,
            "rater": (rater or "").strip() or None,
            "created_at": now(),
        }
        with self.store.transaction() as db:
            key_id = db["api_keys"].insert(row).last_pk
        return self.get(key_id), secret

    def get(self, key_id: int) -> dict[str, Any] | None:
        rows = self.store.query(f"select {PUBLIC_COLUMNS} from api_keys where id = ?", [key_id])
        return rows[0] if rows else None

    def verify(self, secret: str) -> dict[str, Any] | None:
        """The active key for this secret, or None. Hashes are compared in constant time."""
        rows = self.store.query(
            "select id, role, rpm, rater, hash from api_keys "
            "where prefix = ? and revoked_at is null",
            [secret[:PREFIX_LENGTH]],
        )
        for row in rows:
            if hmac.compare_digest(row.pop("hash"), _hash(secret)):
                return row
        return None

    @staticmethod
    def rater_of(key: dict[str, Any]) -> str:
        """The rater a key's judgements are stored under: its fixed name, else `key:<id>`."""
        return key.get("rater") or f"key:{key['id']}"

    def revoke(self, key_id: int) -> dict[str, Any]:
        if self.get(key_id) is None:
            raise ValueError(f"no API key with id {key_id} (see `flywheel keys list`)")
        with self.store.transaction() as db:
            db.execute(
                "update api_keys set revoked_at = ? where id = ? and revoked_at is null",
                [now(), key_id],
            )
        return self.get(key_id)

    def list(self) -> list[dict[str, Any]]:
        return self.store.query(f"select {PUBLIC_COLUMNS} from api_keys order by id")

    def any_active(self) -> bool:
        [row] = self.store.query("select count(*) n from api_keys where revoked_at is null")
        return bool(row["n"])
