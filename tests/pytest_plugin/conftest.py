"""Runs the user-style suites of ``suites/`` as real pytest sessions, through pytester.

Each directory of ``suites/`` is a user's own tests, written as they would be
with wstrace installed: nothing there names the plugin, which pytest loads
through its ``pytest11`` entry point. ``run_suite(name, env)`` copies one into a
fresh directory and runs pytest on it in a subprocess (Django is set up once per
process, and both example apps are ``config.settings``).

``suites/`` is not collected by this session: those tests only make sense inside
their own (``pytest.ini``, ``DJANGO_SETTINGS_MODULE``, the app on the path).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from wsanalyze.demo.example_apps import APPS, example_app_dir

collect_ignore = ["suites"]

SUITES = Path(__file__).parent / "suites"
SUITE_TIMEOUT_S = 180

RunSuite = Callable[..., pytest.RunResult]


def pytest_configure(config: pytest.Config) -> None:
    # ``pytest_plugins`` is only honoured in the top-level conftest; pytester is builtin.
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


@pytest.fixture
def run_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> RunSuite:
    """``run_suite(name, env)``: pytest on ``suites/<name>`` in a subprocess, with ``env`` set."""

    def run(name: str, env: dict[str, str] | None = None, *args: str) -> pytest.RunResult:
        shutil.copytree(SUITES / name, pytester.path, dirs_exist_ok=True)
        monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)  # the suite's ini says
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", *args, timeout=SUITE_TIMEOUT_S
        )

    return run


@pytest.fixture
def example_app_env(
    redis_server, _redis_dbs: Iterator[int], tmp_path: Path
) -> Callable[[str], dict[str, str]]:
    """``example_app_env(app)``: what an example app's tests need: its code, an empty Redis db."""

    def env(app: str) -> dict[str, str]:
        url = redis_server.url_for(next(_redis_dbs))
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        prefix = APPS[app].env_prefix
        return {
            "PYTHONPATH": str(example_app_dir(app)),
            "REDIS_URL": url,
            f"{prefix}_LAYER_SOCKET_TIMEOUT": "none",  # see Stack.process_env
            f"{prefix}_DB_PATH": str(tmp_path / "db.sqlite3"),
            "WSTRACE_DIR": str(tmp_path / "app-traces"),  # the apps' own file exporter
        }

    return env
