from typing import Any
from tests.browser.conftest import Dashboard
from tests.browser.test_devices import _measure_all, devices  # noqa: F401

OUT = "/tmp/device-shots"


def test_shots(dashboard: Dashboard, live_stack: Any, ship_runs: dict, three_runs: list, devices: Any) -> None:  # noqa: F811
    import os
    os.makedirs(OUT, exist_ok=True)
    http = live_stack.client.http
    _measure_all(http, ship_runs["prune-int8"]["id"])
    _measure_all(http, ship_runs["int8-only"]["id"])
    ids = ",".join(str(r["id"]) for r in [ship_runs["int8-only"], ship_runs["prune-int8"], ship_runs["f16"]])
    for name, path in {
        "compare-worker": f"/compare?runs={ids}",
        "compare-rpi4": f"/compare?runs={ids}&device=rpi4",
        "compare-rpi4-p90": f"/compare?runs={ids}&device=rpi4&x=latency_p90_ms",
        "compare-mcu": f"/compare?runs={ids}&x=mcu_ram_bytes",
    }.items():
        page = dashboard.open(path)
        page.wait_for_function("() => document.querySelector('#fig-latency .main-svg') !== null")
        page.wait_for_timeout(800)
        page.screenshot(path=f"{OUT}/{name}.png")
        page.screenshot(path=f"{OUT}/{name}-full.png", full_page=True)
    page = dashboard.open(f"/runs/{ship_runs['prune-int8']['id']}")
    page.wait_for_selector("#device-select option", state="attached")
    page.wait_for_timeout(800)
    page.locator("#devices-card").scroll_into_view_if_needed()
    page.screenshot(path=f"{OUT}/run-devices.png")
    page.screenshot(path=f"{OUT}/run-full.png", full_page=True)
