from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own activation cache folder (never the user's ~/.cache)."""
    monkeypatch.setenv("NCVIZ_CACHE_DIR", str(tmp_path_factory.mktemp("ncviz-cache")))
