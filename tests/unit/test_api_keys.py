"""API keys: shown once, stored as a hash, revocable; the keys CLI; the schema upgrade."""

import hashlib
import subprocess
import sys

import pytest
from sqlite_utils import Database

from feedback import Store
from feedback.api_keys import ApiKeys
from feedback.migrations import migrations


def test_only_a_hash_of_the_secret_is_stored(tmp_path):
    keys = ApiKeys(Store(tmp_path / "f.db"))
    row, secret = keys.create("ci", "user")
    assert secret.startswith("fw-") and len(secret) > 40
    assert "hash" not in row and all("hash" not in r for r in keys.list())
    [stored] = keys.store.db["api_keys"].rows
    assert stored["hash"] == hashlib.sha256(secret.encode()).hexdigest()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("f.db*"))
    assert secret.encode() not in raw and secret[20:].encode() not in raw


def test_verify_needs_the_whole_secret():
    keys = ApiKeys(Store(None))
    row, secret = keys.create("ci", "admin", rpm=10)
    assert keys.verify(secret) == {"id": row["id"], "role": "admin", "rpm": 10, "rater": None}
    assert keys.verify(secret[:-1] + ("x" if secret[-1] != "x" else "y")) is None
    assert keys.verify("fw-nothing") is None


def test_revoked_keys_no_longer_verify():
    keys = ApiKeys(Store(None))
    row, secret = keys.create("ci", "user")
    assert keys.any_active()
    assert keys.revoke(row["id"])["revoked_at"]
    assert keys.verify(secret) is None and not keys.any_active()
    with pytest.raises(ValueError, match="no API key with id 99"):
        keys.revoke(99)


def test_role_must_be_user_or_admin():
    with pytest.raises(ValueError, match="role"):
        ApiKeys(Store(None)).create("x", "root")


def test_a_database_from_before_keys_upgrades(tmp_path):
    db = Database(tmp_path / "old.db")
    migrations.apply(db, stop_before="m003_api_keys")
    assert "api_keys" not in db.table_names()
    db.close()
    store = Store(tmp_path / "old.db")
    assert "api_keys" in store.db.table_names()
    ApiKeys(store).create("after-upgrade", "user")


def test_keys_cli_create_list_revoke(tmp_path):
    def cli(*args):
        command = [sys.executable, "-m", "cli", "keys", *args, "--data-dir", str(tmp_path)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    created = cli("create", "--name", "bot", "--role", "admin", "--rpm", "5")
    assert created.returncode == 0 and created.stdout.startswith("fw-")
    assert "will not be shown again" in created.stderr
    listing = cli("list").stdout
    assert "bot" in listing and "admin" in listing and created.stdout.strip() not in listing
    assert created.stdout[:12] in listing  # the prefix identifies the key
    revoked = cli("revoke", "1")
    assert revoked.returncode == 0 and "no active key is left" in revoked.stderr
    [_, row] = cli("list").stdout.splitlines()
    assert row.split()[-1] != "-"  # the revoked_at column is filled in
    unknown = cli("revoke", "7")
    assert unknown.returncode == 2 and "no API key with id 7" in unknown.stderr
