import pytest


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Exports load back in transformers from the folder alone, never from the Hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
