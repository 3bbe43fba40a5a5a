"""Shared fixtures. ``shared_data``: the folder of real data sets used by integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """$THRIFTY_TEST_DATA, or ../shared/data; relative paths count from the repo root.

    A missing folder fails the test instead of skipping it, so CI cannot pass by not looking.
    """
    configured = os.environ.get("THRIFTY_TEST_DATA")
    path = Path(configured) if configured else Path("../shared/data")
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_dir():
        origin = f"THRIFTY_TEST_DATA={configured}" if configured else "the default ../shared/data"
        pytest.fail(f"shared test data not found at {path} ({origin})")
    return path.resolve()
