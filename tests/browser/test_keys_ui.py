"""API keys in the browser: the page asks for one, and a user key sees no admin controls."""

from __future__ import annotations

import pytest

from feedback.api_keys import ApiKeys
from tests.browser.pages import ask, open_tab, status, wait_for_keys
from tests.polling import wait_for

pytestmark = pytest.mark.browser


@pytest.fixture
def keys(stack, store):
    """An admin and a user key; the gateway requires keys until both are revoked again."""
    api_keys = ApiKeys(store)
    admin, admin_secret = api_keys.create("ui-admin", "admin")
    user, user_secret = api_keys.create("ui-user", "user")
    wait_for_keys(stack.api, required=True)
    yield {"admin": admin_secret, "user": user_secret}
    api_keys.revoke(admin["id"])
    api_keys.revoke(user["id"])
    wait_for_keys(stack.api, required=False)  # other tests run keyless again


def enter_key(page, secret: str) -> None:
    page.locator("#api-key input").fill(secret)
    page.locator("#api-key input").press("Enter")


def test_user_keys_see_no_admin_controls(page, store, keys):
    page.locator("#refresh-models").click()
    wait_for(lambda: "requires an API key" in status(page), what="the page to ask for a key")

    page.locator("#access").get_by_text("Access").first.click()
    enter_key(page, keys["user"])
    wait_for(lambda: "user key" in page.locator("#role").inner_text(), what="the user role")
    ask(page, store, "Say hello to the user key.")  # chatting works with a user key
    open_tab(page, "Adapters")
    page.locator("#adapters-table").wait_for()
    assert (
        page.locator("#adapter-promote").count() == 0
        or not page.locator("#adapter-promote").is_visible()
    )
    open_tab(page, "Data")
    page.locator("#data-counts").wait_for()
    assert page.locator("#export-run").count() == 0 or not page.locator("#export-run").is_visible()
    assert page.locator("#export-needs-admin").is_visible()  # says why there is no export

    enter_key(page, keys["admin"])
    wait_for(lambda: "admin key" in page.locator("#role").inner_text(), what="the admin role")
    wait_for(lambda: page.locator("#export-run").is_visible(), what="the export for admins")
    open_tab(page, "Adapters")
    wait_for(lambda: page.locator("#adapter-promote").is_visible(), what="promote for admins")
