"""``python -m bench.api_fuzz --quick`` works end to end: schemathesis tests every operation
of the workstation's and the backend's schema and no request gets a server error."""

from __future__ import annotations

from pathlib import Path

from tests.test_bench_smoke import figures_of, run_quick

from ecuworks.backend.app import create_backend
from ecuworks.backend.db import default_backend_url, open_backend_database
from ecuworks.backend.settings import BackendSettings
from ecuworks.platform.db import default_url, open_database
from ecuworks.web.app import create_app
from ecuworks.web.settings import WebSettings

APIS = ("workstation", "backend", "backend as workstation")
METHODS = {"get", "put", "post", "delete", "patch"}


def operations_in_schemas(directory: Path) -> dict[str, int]:
    """How many operations each app's OpenAPI schema has, counted here, not by the bench."""
    url = default_url(directory)
    web_db = open_database(url)
    backend_db = open_backend_database(default_backend_url(directory))
    try:
        apps = {
            "workstation": create_app(WebSettings(home=directory, db_url=url), db=web_db),
            "backend": create_backend(BackendSettings(db_url="sqlite://"), db=backend_db),
        }
        return {
            name: sum(len(METHODS & set(item)) for item in app.openapi()["paths"].values())
            for name, app in apps.items()
        }
    finally:
        web_db.close()
        backend_db.close()


def test_quick_api_fuzz_tests_every_operation_without_a_server_error(tmp_path: Path) -> None:
    document = run_quick("bench.api_fuzz", tmp_path, timeout=150)

    in_schema = operations_in_schemas(tmp_path)
    rows = {row["api"]: row for row in document["apis"]}
    assert set(rows) == set(APIS)
    for api, row in rows.items():
        expected = in_schema[api.split()[0]]
        assert row["operations_in_schema"] == row["operations_tested"] == expected >= 1, api
        assert row["requests"] >= row["operations_tested"], api
        assert row["server_errors"] == 0, row["server_error_requests"]
        assert row["complete"], api
    assert document["problems"] == []
    figures = figures_of(document)
    for api in APIS:
        errors = figures[f"schemathesis {api} server errors"]
        assert errors["value"] == 0
        assert errors["met"] is True
