"""The usage charts in a real headless browser (Debian's chromium, through chromedriver): the Django admin's
dashboard over every key and a signed-in user's console, loaded with data; each chart must be drawn by
Chart.js with that data, and the canvases must hold pixels. Screenshots: CHARTS_SCREENSHOTS=docs/images.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser

from bifrost_asgi.governance import Budget
from bifrost_asgi.governance.engine import budget_limit
from bifrost_django.models import Counter, UsageLog, VirtualKey

pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "gemini-2.0-flash")
# Every chart, and what its drawn data must add up to (more than zero, or at least one bar).
CHARTS = ("requests", "tokens", "cost", "error_rate", "latency", "budgets")

DRAWN = """
const out = {};
for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
  const chart = Chart.getChart(canvas);
  const sets = chart ? chart.data.datasets : [];
  const sum = sets.flatMap((s) => s.data).reduce((a, v) => a + (v || 0), 0);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  const points = sets.length ? sets[0].data.length : 0;
  out[canvas.dataset.chart] = {sets: sets.length, labels: sets.map((s) => s.label), points, sum, painted};
}
return out;
"""


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed (.ci/run installs them)")
        pytest.skip("needs chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,2400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _history(owner: AbstractBaseUser, key: VirtualKey) -> None:
    """Six days of usage: three models, a few errors, latencies that vary. Six, not seven: the charts show
    the last 28 six-hour buckets aligned to the clock, so a row 165 hours old falls out of them early in a
    bucket."""
    now = datetime.now(UTC)
    rows = []
    for hour in range(0, 24 * 6, 5):
        for i, model in enumerate(MODELS):
            failed = hour % 35 == 0 and i == 2
            rows.append(
                UsageLog(
                    request_id=f"r-{hour}-{i}",
                    timestamp=now - timedelta(hours=hour, minutes=i),
                    object="chat_completion",
                    provider=model.split("-")[0],
                    model=model,
                    owner=owner,
                    virtual_key=key,
                    virtual_key_name=key.name,
                    status="error" if failed else "success",
                    status_code=503 if failed else 200,
                    input_tokens=100 * (i + 1),
                    output_tokens=40 + hour % 17,
                    total_tokens=100 * (i + 1) + 40 + hour % 17,
                    cost=0.0001 * (i + 1),
                    latency=300 + (hour * 37 + i * 101) % 900,
                )
            )
    UsageLog.objects.bulk_create(rows)
    counter = budget_limit(f"vk:{key.id}", Budget(max_limit=10, reset_duration="1M")).key
    start = time.time() - 3600
    Counter.objects.create(key=counter, used=6.5, start=start, end=start + 30 * 86400)


def _sign_in(driver: Any, url: str, username: str) -> None:
    driver.get(url + "/accounts/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys("pw")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # click() does not wait for the login's redirect: a driver.get() issued before it lands is overtaken by
    # it (the page became the redirect's 404 under load). Wait until the browser has left the login page.
    # (Waiting for the old submit button to go stale raced the navigation: Chromium's driver answered
    # "Node with given id does not belong to the document", an error, instead of "stale".)
    WebDriverWait(driver, 60, ignored_exceptions=(WebDriverException,)).until(
        lambda d: "/accounts/login/" not in d.current_url
    )


def _drawn(driver: Any, page: str, shot: str) -> dict[str, dict[str, Any]]:
    driver.get(page)
    try:
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.ID, "usage-charts").get_attribute("data-state") in ("ready", "error")
        )
    except TimeoutException:
        pytest.fail(f"the charts never loaded: {driver.get_log('browser')} {driver.page_source[-2000:]}")
    totals = driver.find_element(By.CSS_SELECTOR, "#usage-charts .usage-totals").text
    assert driver.find_element(By.ID, "usage-charts").get_attribute("data-state") == "ready", totals
    folder = os.environ.get("CHARTS_SCREENSHOTS")
    if folder:
        driver.find_element(By.ID, "usage-charts").screenshot(str(Path(folder) / shot))
    drawn: dict[str, dict[str, Any]] = driver.execute_script(DRAWN)
    return drawn


def test_the_admin_dashboard_and_the_console_draw_every_chart_with_data(
    live_server: Any, browser: Any, django_user_model: Any
) -> None:
    django_user_model.objects.create_user("root", password="pw", is_staff=True, is_superuser=True)
    ada = django_user_model.objects.create_user("ada", password="pw")
    key, _ = VirtualKey.objects.create_key(
        name="notebook",
        owner=ada,
        allow_all_providers=True,
        budgets=[{"max_limit": 10, "reset_duration": "1M"}],
    )
    _history(ada, key)

    _sign_in(browser, live_server.url, "root")
    admin = _drawn(browser, live_server.url + "/admin/bifrost/usagelog/charts/", "usage-charts-admin.png")
    assert set(admin) == set(CHARTS)
    for name in ("requests", "tokens", "cost", "latency"):
        assert admin[name]["points"] == 28 and admin[name]["sum"] > 0 and admin[name]["painted"] > 1000, name
    assert set(MODELS) <= set(admin["requests"]["labels"])  # one series per model
    assert admin["requests"]["sum"] == UsageLog.objects.count()
    assert admin["error_rate"]["sum"] > 0 and admin["budgets"]["sum"] == pytest.approx(65.0)
    text = browser.find_element(By.CSS_SELECTOR, "#usage-charts .usage-totals").text
    assert text.startswith(f"{UsageLog.objects.count()} requests")

    browser.delete_all_cookies()
    _sign_in(browser, live_server.url, "ada")
    mine = _drawn(browser, live_server.url + "/console/", "usage-charts-console.png")
    assert mine["requests"]["sum"] == UsageLog.objects.filter(owner=ada).count()
    assert mine["requests"]["labels"] == ["notebook"]  # per key: only ada's own
    assert mine["budgets"]["sets"] == 1 and mine["budgets"]["sum"] == pytest.approx(65.0)
