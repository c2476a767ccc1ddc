"""How a requested model name maps to the engine's name for it."""

import pytest

from feedback import Store
from serve.adapters import AdapterRegistry
from serve.errors import UnknownModel


@pytest.fixture
def registry(tmp_path) -> AdapterRegistry:
    store = Store(None)
    for version, status in [(1, "retired"), (2, "live"), (3, "candidate")]:
        store.add_adapter(
            {"name": "tone", "version": version, "engine_name": f"tone@{version}", "status": status}
        )
    store.add_adapter({"name": "new", "version": 1, "engine_name": "new@1", "status": "candidate"})
    return AdapterRegistry(
        store, tmp_path, "Base-1", "/m/Base-1", max_rank=16, keys_exist=lambda: False
    )


def test_base_by_name_and_alias(registry):
    assert registry.resolve("Base-1") == "Base-1"
    assert registry.resolve("base") == "Base-1"


def test_adapter_name_means_its_live_version(registry):
    assert registry.resolve("tone") == "tone@2"


def test_adapter_without_live_version_means_its_newest(registry):
    assert registry.resolve("new") == "new@1"


def test_explicit_version_and_live_alias(registry):
    assert registry.resolve("tone@3") == "tone@3"
    assert registry.resolve("live") == "tone@2"


def test_retired_versions_are_not_served(registry):
    with pytest.raises(UnknownModel):
        registry.resolve("tone@1")


def test_unknown_model_lists_what_exists(registry):
    with pytest.raises(UnknownModel, match="Base-1, base, live, new, tone"):
        registry.resolve("gpt-5")


def test_models_list_shows_each_adapter_by_name(registry):
    cards = {c["id"]: c for c in registry.model_cards(created=0)}
    assert set(cards) == {"base", "live", "tone", "new"}
    assert cards["tone"]["root"] == "tone@2"
    assert cards["tone"]["parent"] == "Base-1"
