"""docker-compose.yml agrees with the CLI, the settings and the README (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from clipsearch.cli import app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _named_volumes(service: dict) -> dict[str, str]:
    out = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        out[target] = source
    return out


def test_services_volumes_and_health():
    assert {"db", "indexer", "ui", "api"} <= set(SERVICES)
    assert "pgdata" in COMPOSE["volumes"] and "store" in COMPOSE["volumes"] and "models" in COMPOSE["volumes"]
    assert "healthcheck" in SERVICES["db"]
    for name in ("indexer", "ui", "api"):
        svc = SERVICES[name]
        assert svc["depends_on"]["db"]["condition"] == "service_healthy"
        vols = _named_volumes(svc)
        assert vols["/store"] == "store" and vols["/models"] == "models"
        assert any(v.endswith(":/photos:ro") for v in svc["volumes"]), "photos must be mounted read-only"


def test_app_environment_matches_settings():
    for name in ("indexer", "ui", "api"):
        env = SERVICES[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@db:5432/" in env["DATABASE_URL"]
        assert env["CLIPSEARCH_HOME"] == "/store"
        assert env["CLIPSEARCH_MODEL_CACHE"] == "/models"
    db_env = SERVICES["db"]["environment"]
    assert db_env["POSTGRES_DB"] in SERVICES["ui"]["environment"]["DATABASE_URL"]
    settings_src = (ROOT / "clipsearch" / "settings.py").read_text()
    for var in ("CLIPSEARCH_HOME", "DATABASE_URL", "CLIPSEARCH_MODEL_CACHE"):
        assert var in settings_src


def test_commands_are_real_cli_commands():
    runner = CliRunner()
    for name in ("indexer", "ui", "api"):
        command = SERVICES[name]["command"]
        assert command[0] == "clipsearch"
        result = runner.invoke(app, [command[1], "--help"])
        assert result.exit_code == 0, f"{command}: {result.output}"
        for option in (c for c in command[2:] if c.startswith("--")):
            assert option in result.output, f"{option} is not an option of clipsearch {command[1]}"
    assert SERVICES["indexer"]["command"] == ["clipsearch", "index", "/photos"]
    gpu = SERVICES["indexer"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert "gpu" in gpu["capabilities"]


def test_readme_documents_the_deployment():
    readme = (ROOT / "README.md").read_text()
    assert "docker compose up" in readme
    for var in ("PHOTOS_DIR", "POSTGRES_PASSWORD", "CLIPSEARCH_MODEL", "UI_PORT", "DATABASE_URL"):
        assert var in readme
    env_refs = {"PHOTOS_DIR", "POSTGRES_PASSWORD", "CLIPSEARCH_MODEL", "UI_PORT"}
    text = (ROOT / "docker-compose.yml").read_text()
    for var in env_refs:
        assert "${" + var in text


def test_ray_profile_is_optional_and_runs_a_head_and_workers():
    head, worker = SERVICES["ray-head"], SERVICES["ray-worker"]
    assert head["profiles"] == ["ray"] and worker["profiles"] == ["ray"]  # `docker compose up` leaves them out
    assert all("profiles" not in SERVICES[name] for name in ("db", "indexer", "ui"))
    assert head["command"][:3] == ["ray", "start", "--head"] and "--block" in head["command"]
    assert "--address=ray-head:6379" in worker["command"]
    assert "ray" in head["build"]["args"]["EXTRAS"].split(",") and worker["image"] == head["image"]
    assert "ARG EXTRAS" in (ROOT / "Dockerfile").read_text()
    for svc in (head, worker):
        vols = _named_volumes(svc)
        assert vols["/store"] == "store" and vols["/models"] == "models"  # thumbnails and weights shared
        assert any(v.endswith(":/photos:ro") for v in svc["volumes"])
        assert svc["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "gpu" in worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"]
    readme = (ROOT / "README.md").read_text()
    assert "docker compose --profile ray" in readme and "--engine ray --address auto" in readme


def test_api_service_has_its_token():
    """The API listens beyond loopback in its container, which `clipsearch serve` refuses without a token."""
    api = SERVICES["api"]
    assert api["command"][api["command"].index("--host") + 1] == "0.0.0.0"
    assert api["environment"]["CLIPSEARCH_API_TOKEN"].startswith("${CLIPSEARCH_API_TOKEN")
    assert "CLIPSEARCH_API_TOKEN" in " ".join(api["healthcheck"]["test"])
    assert any(port.endswith(":8700") for port in api["ports"])
