"""API keys: hashed at rest, uniform refusals, revocation within the cache TTL, the CLI."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from luma_ray.api.keys import KeyStore, Principal, keys_path
from luma_ray.api.keys_cli import add_commands
from luma_ray.errors import ConfigError, InvalidRequest, NotFound, Unauthorized

TIERS = ("api", "free")
NOW_S = 1_700_000_000.0


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[KeyStore]:
    s = KeyStore(tmp_path / "keys.sqlite", TIERS, clock=clock)
    yield s
    s.close()


def test_create_then_authenticate_round_trip(store: KeyStore) -> None:
    key, record = store.create("acme", "api", now_s=NOW_S)
    assert key.startswith(f"lr_{record.key_id}_")
    assert len(record.key_id) == 12 and int(record.key_id, 16) >= 0
    assert record.scopes == ("user",) and record.revoked_at_s is None
    assert record.created_at_s == NOW_S
    principal = store.authenticate(key)
    assert principal == Principal("acme", "api", frozenset({"user"}), record.key_id)
    assert not principal.is_admin

    admin_key, admin_record = store.create("ops@acme", "free", admin=True, now_s=NOW_S)
    assert admin_record.scopes == ("admin", "user")
    admin = store.authenticate(admin_key)
    assert admin.is_admin and admin.scopes == {"user", "admin"} and admin.tenant == "ops@acme"
    assert store.authenticate(key).key_id != admin.key_id


def test_keys_survive_reopening(tmp_path: Path) -> None:
    with KeyStore(tmp_path / "k.sqlite", TIERS) as first:
        key, record = first.create("acme", "api", now_s=NOW_S)
    with KeyStore(tmp_path / "k.sqlite", TIERS) as second:
        assert second.authenticate(key).key_id == record.key_id
        assert second.list() == [record]


def _refusal(store: KeyStore, key: str | None) -> str:
    with pytest.raises(Unauthorized) as info:
        store.authenticate(key)
    return str(info.value)


def test_bad_keys_are_refused_without_echo(store: KeyStore) -> None:
    key, record = store.create("acme", "api", now_s=NOW_S)
    secret = key.split("_", 2)[2]
    other_key, _ = store.create("acme", "api", now_s=NOW_S)
    wrong_secret = f"lr_{record.key_id}_{other_key.split('_', 2)[2]}"
    unknown_id = f"lr_{'0' * 12}_{secret}"  # 2**-48 chance that this id exists
    malformed = [
        "lr_",
        key[:-1],
        key + "x",
        key.upper(),
        f"xx_{record.key_id}_{secret}",
        f"lr_{record.key_id}-{secret}",
        f"Bearer {key}",
        "lr_" + "g" * 12 + "_" + secret,
    ]
    assert "no API key" in _refusal(store, None)
    assert "no API key" in _refusal(store, "")
    assert "not valid" in _refusal(store, wrong_secret)
    assert "not valid" in _refusal(store, unknown_id)
    for bad in malformed:
        message = _refusal(store, bad)
        assert "malformed" in message
        assert secret not in message and record.key_id not in message
    # Unknown id and wrong secret read the same, so ids cannot be probed.
    assert _refusal(store, wrong_secret) == _refusal(store, unknown_id)


def test_revoked_key_is_refused_at_once_by_the_same_store(store: KeyStore) -> None:
    key, record = store.create("acme", "api", now_s=NOW_S)
    store.authenticate(key)  # now cached
    revoked = store.revoke(record.key_id, now_s=NOW_S + 10)
    assert revoked.revoked_at_s == NOW_S + 10
    assert "revoked" in _refusal(store, key)
    # Revoking twice keeps the first time.
    assert store.revoke(record.key_id, now_s=NOW_S + 99).revoked_at_s == NOW_S + 10


def test_revocation_elsewhere_takes_effect_within_the_cache_ttl(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "keys.sqlite"
    server = KeyStore(path, TIERS, cache_ttl_s=5.0, clock=clock)
    cli = KeyStore(path, TIERS)
    key, record = cli.create("acme", "api", now_s=NOW_S)
    assert server.authenticate(key).tenant == "acme"

    cli.revoke(record.key_id, now_s=NOW_S + 1)
    clock.now_s += 4.9
    assert server.authenticate(key).tenant == "acme"  # still cached: documented staleness
    clock.now_s += 0.2
    assert "revoked" in _refusal(server, key)
    server.close()
    cli.close()


def test_cache_off_sees_revocation_immediately(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    server = KeyStore(path, TIERS, cache_ttl_s=0)
    cli = KeyStore(path, TIERS)
    key, record = cli.create("acme", "api", now_s=NOW_S)
    assert server.authenticate(key).tenant == "acme"
    cli.revoke(record.key_id, now_s=NOW_S)
    assert "revoked" in _refusal(server, key)
    server.close()
    cli.close()


def test_file_holds_only_the_hash_of_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    store = KeyStore(path, TIERS)
    keys = [store.create("acme", "api", now_s=NOW_S)[0] for _ in range(3)]
    store.authenticate(keys[0])
    store.close()
    data = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(path.name))
    for key in keys:
        secret = key.split("_", 2)[2]
        assert secret.encode() not in data
        assert key.encode() not in data
        # The hash is there, so this test reads the bytes that matter.
        assert hashlib.sha256(secret.encode()).hexdigest().encode() in data
    assert path.stat().st_mode & 0o077 == 0


def test_list_shows_records_without_secrets(store: KeyStore) -> None:
    key_a, rec_a = store.create("acme", "api", now_s=NOW_S)
    key_b, rec_b = store.create("beta", "free", admin=True, now_s=NOW_S + 1)
    store.revoke(rec_a.key_id, now_s=NOW_S + 2)
    listed = store.list()
    assert [r.key_id for r in listed] == [rec_a.key_id, rec_b.key_id]
    assert listed[0].revoked_at_s == NOW_S + 2 and listed[1].revoked_at_s is None
    text = repr(listed)
    for key in (key_a, key_b):
        secret = key.split("_", 2)[2]
        assert secret not in text
        assert hashlib.sha256(secret.encode()).hexdigest() not in text


@pytest.mark.parametrize(
    "tenant,tier,expected",
    [
        ("", "api", "tenant must be 1-128 characters"),
        ("a b", "api", "tenant must be 1-128 characters"),
        ("x" * 129, "api", "got 129 characters"),
        ("acme/evil", "api", "tenant must be"),
        ("acme", "gold", "unknown tier 'gold'; use one of api, free"),
    ],
)
def test_bad_tenant_or_tier_is_invalid(store: KeyStore, tenant: str, tier: str, expected: str):
    with pytest.raises(InvalidRequest, match=expected):
        store.create(tenant, tier, now_s=NOW_S)
    assert store.list() == []


def test_tenant_at_the_limits_is_accepted(store: KeyStore) -> None:
    for tenant in ("a", "x" * 128, "A.b_c@d:e-9"):
        store.create(tenant, "api", now_s=NOW_S)
    assert len(store.list()) == 3


def test_revoke_unknown_or_malformed_id(store: KeyStore) -> None:
    with pytest.raises(NotFound, match="no key with id 000000000000"):
        store.revoke("000000000000", now_s=NOW_S)
    key, _ = store.create("acme", "api", now_s=NOW_S)
    with pytest.raises(InvalidRequest) as info:
        store.revoke(key, now_s=NOW_S)  # the whole key pasted by mistake
    assert key not in str(info.value)


def test_authenticate_from_eight_threads(tmp_path: Path) -> None:
    # A 0 s TTL makes every call hit SQLite, the part that must be guarded.
    store = KeyStore(tmp_path / "keys.sqlite", TIERS, cache_ttl_s=0)
    issued = [store.create(f"t{i}", "api", now_s=NOW_S) for i in range(4)]
    bad = f"lr_{issued[0][1].key_id}_{issued[1][0].split('_', 2)[2]}"
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(200):
                key, record = issued[(n + i) % len(issued)]
                assert store.authenticate(key).tenant == record.tenant
                with pytest.raises(Unauthorized):
                    store.authenticate(bad)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    store.close()
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_unwritable_path_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot open"):
        KeyStore(tmp_path / "file" / "keys.sqlite", TIERS)


def test_keys_module_imports_only_stdlib_and_errors() -> None:
    """The HTTP layer and the CLI both import it; it must stay free of FastAPI, Ray, pydantic."""
    code = (
        "import sys\n"
        "import luma_ray.api.keys\n"
        "mods = ('ray', 'fastapi', 'starlette', 'pydantic', 'yaml', 'torch', 'luma_ray.config')\n"
        "print(','.join(sorted(m for m in mods if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_queues_read_key_reads_the_queues_and_nothing_else(store: KeyStore) -> None:
    key, record = store.create("ops", "free", scopes=["queues:read"], now_s=NOW_S)
    assert record.scopes == ("queues:read",)
    viewer = store.authenticate(key)
    assert viewer.can_read_queues and not viewer.is_admin and "user" not in viewer.scopes
    admin = store.authenticate(store.create("root", "api", admin=True, now_s=NOW_S)[0])
    assert admin.can_read_queues  # admin implies it
    user = store.authenticate(store.create("acme", "api", now_s=NOW_S)[0])
    assert not user.can_read_queues
    both, _ = store.create("acme", "api", scopes=["user", "queues:read"], now_s=NOW_S)
    assert store.authenticate(both).scopes == {"user", "queues:read"}
    for bad in (["admin"], ["queues:write"], []):
        with pytest.raises(InvalidRequest, match="scope"):
            store.create("ops", "free", scopes=bad, now_s=NOW_S)


# The command line ------------------------------------------------------------------------


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_cli_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert _run(["keys", "list", *data]) == 0
    assert "no keys" in capsys.readouterr().out
    assert not keys_path(tmp_path).exists()  # listing does not create the file

    assert _run(["keys", "create", "--tenant", "acme", "--tier", "api", "--admin", *data]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    key = lines[-1]
    assert len(lines) == 2 and key not in lines[0]
    with KeyStore(keys_path(tmp_path), ()) as store:
        principal = store.authenticate(key)
    assert principal.tenant == "acme" and principal.tier == "api" and principal.is_admin
    assert principal.key_id in lines[0]

    assert _run(["keys", "list", *data]) == 0
    table = capsys.readouterr().out
    assert principal.key_id in table and "acme" in table and "admin,user" in table
    assert key.split("_", 2)[2] not in table

    assert _run(["keys", "revoke", principal.key_id, *data]) == 0
    assert "revoked key " + principal.key_id in capsys.readouterr().out
    with KeyStore(keys_path(tmp_path), ()) as store, pytest.raises(Unauthorized):
        store.authenticate(key)
    _run(["keys", "list", *data])
    row = [line for line in capsys.readouterr().out.splitlines() if principal.key_id in line]
    assert row and row[0].rstrip().endswith("Z")  # the revoked column has a time


def test_cli_creates_a_queues_read_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    argv = ["keys", "create", "--tenant", "ops", "--tier", "free", "--scope", "queues:read"]
    assert _run([*argv, *data]) == 0
    out = capsys.readouterr().out
    assert "scopes queues:read;" in out
    with KeyStore(keys_path(tmp_path), ()) as store:
        viewer = store.authenticate(out.strip().splitlines()[-1])
    assert viewer.scopes == {"queues:read"}
    with pytest.raises(SystemExit):
        _run(["keys", "create", "--tenant", "ops", "--tier", "free", "--scope", "admin", *data])


def test_cli_tiers_come_from_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    with pytest.raises(InvalidRequest, match="unknown tier 'gold'"):
        _run(["keys", "create", "--tenant", "acme", "--tier", "gold", *data])
    config = tmp_path / "config.yaml"
    config.write_text("tiers:\n  - {name: gold, max_wait_s: 60}\n")
    argv = ["keys", "create", "--tenant", "acme", "--tier", "gold", "--config", str(config)]
    assert _run([*argv, *data]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    with KeyStore(keys_path(tmp_path), ()) as store:
        assert store.authenticate(key).tier == "gold"


def test_cli_revoke_unknown(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no keys file"):
        _run(["keys", "revoke", "0" * 12, "--data-dir", str(tmp_path)])
    KeyStore(keys_path(tmp_path), TIERS).close()
    with pytest.raises(NotFound, match="no key with id"):
        _run(["keys", "revoke", "0" * 12, "--data-dir", str(tmp_path)])


def test_cli_webhook_secret_is_the_tenants_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from luma_ray.notify.signing import sign_headers, tenant_secret, verify

    data = ["--data-dir", str(tmp_path)]
    with pytest.raises(NotFound, match="luma-ray up"):
        _run(["keys", "webhook-secret", "--tenant", "acme", *data])
    (tmp_path / "webhook.secret").write_bytes(b"master-secret-0123456789\n")
    assert _run(["keys", "webhook-secret", "--tenant", "acme", *data]) == 0
    acme = capsys.readouterr().out.strip()
    assert acme == tenant_secret(b"master-secret-0123456789", "acme")
    assert acme.startswith("whsec_") and "master" not in acme
    _run(["keys", "webhook-secret", "--tenant", "zeta", *data])
    zeta = capsys.readouterr().out.strip()
    assert zeta != acme
    # What one tenant signs, another tenant's secret does not verify.
    headers = sign_headers(acme, "evt_1", b"{}", 1_700_000_000)
    assert verify(acme, b"{}", headers, now_s=1_700_000_000)
    assert not verify(zeta, b"{}", headers, now_s=1_700_000_000)
    with pytest.raises(InvalidRequest, match="--tenant"):
        _run(["keys", "webhook-secret", "--tenant", " ", *data])
