"""Tests marked ``slow`` (a local Ray instance, long runs) are skipped unless ``--run-slow`` is given or
``CONFIDE_SLOW=1`` is set."""

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a long test, skipped unless --run-slow or CONFIDE_SLOW=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow") or os.environ.get("CONFIDE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or CONFIDE_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
