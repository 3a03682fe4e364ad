"""No PostgreSQL password in any message: URLs, driver errors, reports; password_file."""

import pytest

from crossover_ros.errors import MapDatabaseError
from crossover_ros.mapdb import open_map
from crossover_ros.mapdb.postgres import PostgresMapDatabase, _split_schema, redact_url

SECRETS = ["secret", "se/cr?et", "a#b!", "p@ss:w/rd", "x?y=z&w"]


@pytest.mark.parametrize("password", SECRETS)
def test_redact_url_masks_any_password(password):
    for url in (
        f"postgresql://robot:{password}@db.example/maps#office",
        f"postgresql://robot:{password}@[::1/map",
        f"postgres://robot:{password}@host:5432/db?sslmode=require",
    ):
        shown = redact_url(url)
        assert password not in shown and "robot:***@" in shown, shown
    assert "secret" not in redact_url("postgresql://host/db?password=secret&sslmode=require")


def test_a_hash_in_the_password_is_not_the_map_name():
    base, schema = _split_schema("postgresql://robot:a#b@host/db#office")
    assert (base, schema) == ("postgresql://robot:a#b@host/db", "office")
    assert _split_schema("postgresql://robot:a#b@host/db")[1] == "crossover_map"
    with pytest.raises(MapDatabaseError) as info:
        _split_schema("postgresql://robot:pw@host/db#Not-An-Identifier")
    assert "robot:pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://robot:secret@[::1/map",
        "postgresql://robot:se/cr?et@localhost:1/db",
        "postgresql://robot:secret@localhost:1/db?password=secret",
    ],
)
def test_driver_errors_do_not_carry_the_password(url):
    pytest.importorskip("psycopg")
    with pytest.raises(MapDatabaseError) as info:
        open_map(url)
    message = str(info.value)
    assert "secret" not in message and "se/cr" not in message and "cr?et" not in message
    assert "et@" not in message, "not even the tail of the password libpq quotes"


def test_password_file_is_passed_to_the_driver_and_never_shown(tmp_path, monkeypatch):
    psycopg = pytest.importorskip("psycopg")
    secret_file = tmp_path / "pg_password"
    secret_file.write_text("s3cr3t!\n")
    seen = {}

    def connect(url, **kwargs):
        seen.update(kwargs)
        raise psycopg.OperationalError(f'password authentication failed: "{kwargs["password"]}"')

    monkeypatch.setattr(psycopg, "connect", connect)
    with pytest.raises(MapDatabaseError) as info:
        PostgresMapDatabase.open("postgresql://robot@host/db", password_file=str(secret_file))
    assert seen["password"] == "s3cr3t!"
    assert "s3cr3t" not in str(info.value) and "password_file" in str(info.value)
    with pytest.raises(MapDatabaseError, match="cannot read password_file"):
        open_map("postgresql://robot@host/db", password_file=str(tmp_path / "missing"))


def test_map_cfg_has_a_password_file_setting():
    from crossover_ros.config import settings_of
    from crossover_ros.pipeline.config import PipelineCfg, RecordingPipelineCfg

    for cfg in (PipelineCfg, RecordingPipelineCfg):
        assert "map.password_file" in {s.name for s in settings_of(cfg)}
