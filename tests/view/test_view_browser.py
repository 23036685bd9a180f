"""`selflab view` in a real headless browser (Chromium driven by Selenium).

Skipped, with the reason, where Selenium or a Chromium with its driver is absent; scripts/setup.sh
installs both on a Debian machine. The page test saves a screenshot under the test's tmp dir and
prints its path.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from selflab.results import game_rows
from selflab.runs import RunDir

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")


def _browser():  # type: ignore[no-untyped-def]
    pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[dev]')")
    if not CHROMIUM or not DRIVER:
        pytest.skip("no Chromium/chromedriver on PATH (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(tmp_path):  # type: ignore[no-untyped-def]
    import uvicorn

    from selflab.envs.runner import play, schedule
    from selflab.view import create_app

    runs = tmp_path / "runs"
    run = RunDir.create(runs / "play-perudo", config={"game": "perudo-v0"}, seed=0, command="selflab play")
    res = play(schedule("perudo-v0", ["scripted", "fuzz"], 4, seed=0), run=run)
    run.metrics.extend(game_rows("selflab play", res.episodes))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(runs), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_view_lists_runs_steps_replays_and_filters_records(server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = _browser()
    driver.implicitly_wait(20)  # a page loaded after a click may take a moment on a busy machine
    try:
        driver.get(server + "/")
        links = driver.find_elements(By.CSS_SELECTOR, "a.run")
        assert [a.text for a in links] == ["play-perudo"]
        links[0].click()
        assert "win rate [95% Wilson CI]" in driver.page_source and "Elo" in driver.page_source
        shot = Path(tmp_path) / "view-report.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot: {shot}")

        driver.find_element(By.LINK_TEXT, "episodes").click()
        driver.find_element(By.CSS_SELECTOR, "td a").click()
        visible = lambda: [r for r in driver.find_elements(By.CSS_SELECTOR, "tr.ev") if r.is_displayed()]  # noqa: E731
        assert len(visible()) == 1
        for _ in range(5):
            driver.find_element(By.ID, "next").click()
        assert len(visible()) == 6 and driver.find_element(By.ID, "pos").text.startswith("6 /")
        driver.find_element(By.ID, "all").click()
        refused = [r for r in visible() if "ev-refused" in r.get_attribute("class")]
        assert refused and "parse:" in refused[0].text  # the reason, next to the raw output
        assert refused[0].find_elements(By.TAG_NAME, "pre")  # the raw model output
        driver.save_screenshot(str(Path(tmp_path) / "view-replay.png"))
        print(f"screenshot: {Path(tmp_path) / 'view-replay.png'}")

        driver.get(server + "/run/play-perudo/-/records/episodes")
        total = driver.find_element(By.ID, "count").text
        select = Select(driver.find_element(By.NAME, "episode_id"))
        select.select_by_index(1)
        driver.find_element(By.ID, "apply").click()
        assert total.startswith("4 of 4")
        WebDriverWait(
            driver, 30, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
        ).until(lambda d: d.find_element(By.ID, "count").text.startswith("1 of "))
    finally:
        driver.quit()
