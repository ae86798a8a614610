"""Signing in to the console through an OIDC provider in headless Chromium:
the button on the sign-in page, the provider on another loopback origin, and
back signed in (or refused, with the reason on the sign-in page)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from lrs.service import create_app
from tests.browser.test_console_browser import DESKTOP, PHONE, shot
from tests.e2e.oidc_provider import Provider
from tests.e2e.test_console import settings_for


@pytest.fixture
async def base(database_url: str, tmp_path: Path, provider: Provider) -> AsyncIterator[str]:
    settings = settings_for(database_url, tmp_path, **provider.console_settings("VNeID"))
    app = create_app(settings, database_url=database_url, nats_url=None)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/")


async def test_the_button_signs_in_through_the_provider(browser: Any, base: str, provider: Provider,
                                                        screenshots: Path) -> None:
    context = await browser.new_context(viewport=PHONE, locale="vi-VN")
    page = await context.new_page()
    try:
        await page.goto(base + "/console/operations")
        assert "/console/signin" in page.url
        button = page.locator("#oidc-signin button")
        assert (await button.inner_text()).strip() == "Đăng nhập bằng VNeID"
        await shot(page, screenshots, "signin-oidc-phone-vi")
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await button.click()
        await page.wait_for_url(base + "/console/operations", timeout=15_000)
        assert "Nguyễn Thị Lan · default" in await page.locator("header .who").inner_text()
        assert provider.token_requests == 1
        await shot(page, screenshots, "operations-after-oidc-phone-vi")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the operations page scrolls sideways on a phone ({width}px)"
        await page.click("header form button")  # sign out: the session ends
        await page.wait_for_load_state()
        await page.goto(base + "/console/operations")
        assert "/console/signin" in page.url
    finally:
        await context.close()


async def test_a_refused_id_token_leaves_the_browser_signed_out_with_the_reason(
    browser: Any, base: str, provider: Provider, screenshots: Path
) -> None:
    provider.id_token_changes = {"aud": "another-client", "azp": "another-client"}
    context = await browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = await context.new_page()
    try:
        await page.goto(base + "/console/signin")
        await page.click("#oidc-signin button")
        await page.locator("#signin-problem").wait_for(timeout=15_000)
        problem = await page.locator("#signin-problem").inner_text()
        assert "the provider's ID token did not pass the checks" in problem and "not meant for this console" in problem
        await shot(page, screenshots, "signin-oidc-refused")
        await page.goto(base + "/console/units")
        assert "/console/signin" in page.url
    finally:
        await context.close()
