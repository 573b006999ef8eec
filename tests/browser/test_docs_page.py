"""`/_public/docs` in a real headless browser (Debian's chromium driven by Playwright): no console error,
every route listed, every asset served by the API itself (no CDN)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.services import need_binary


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api as playwright_api  # in the `test` extra

    chromium = need_binary("chromium")  # .ci/run installs Debian's package (`playwright install` cannot here)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield browser
        finally:
            browser.close()


def test_docs_page_renders_every_route_offline(browser, embedded, tmp_path):
    page = browser.new_page()
    errors: list[str] = []
    requested: list[str] = []
    page.on(
        "console",
        lambda message: errors.append(f"{message.text} at {message.location}") if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.on("request", lambda request: requested.append(request.url))
    page.on(
        "response", lambda answer: errors.append(f"{answer.status}: {answer.url}") if answer.status >= 400 else None
    )
    page.goto(f"{embedded.base}/_public/docs", wait_until="networkidle")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    paths = {p.replace("\u200b", "").strip() for p in paths}
    for route in (
        "/_public/status",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/jobs/{job_id}/retry",
        "/api/v1/jobs/linear",
        "/_worker/workers/register",
        "/api/v1/blueprints/{name}/graph",
    ):
        assert route in paths, (route, sorted(paths))
    own = urlparse(embedded.base).netloc
    assert requested and all(urlparse(url).netloc == own for url in requested if not url.startswith("data:")), requested
    assert errors == []
    shot = tmp_path / "docs.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000  # a rendered page, not blank
    page.close()
