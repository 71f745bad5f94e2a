"""Screenshots of the data-owner UI's main pages (`make screenshots`).

Builds the same small world as the UI tests (a hub with simulated patients, a data owner with
TOTP, a coordinator with one pending access request and one approved earlier), serves the hub
on loopback, drives Debian's headless Chromium through Playwright and writes one PNG per page.

    .venv/bin/python scripts/ui_screenshots.py [OUT_DIR]   (default: screenshots/)
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

PAGES = (("datasets", "/ui/"), ("requests", "/ui/requests"), ("studies", "/ui/studies"), ("audit", "/ui/audit"),
         ("alerts", "/ui/alerts"), ("withdrawals", "/ui/withdrawals"))


def main(out: Path) -> None:
    import uvicorn

    from governance_ui.ui_support import build_world, chromium_page, file_request, free_port, sign_in, ui_app

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp))
        file_request(world.registry, study="cspca-external-validation")
        earlier = file_request(world.registry, study="cspca-lr")
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(ui_app(world), host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            thread.join(0.05)
        base = f"http://127.0.0.1:{port}"
        try:
            with chromium_page(Path(tmp) / "profile") as page:
                page.goto(f"{base}/ui/login")
                page.screenshot(path=str(out / "login.png"), full_page=True)
                sign_in(page, base, world)
                page.goto(f"{base}/ui/requests")
                form = page.locator(f"#request-{earlier.request_id}")
                form.locator("input[name=fields][value=dre]").uncheck()
                form.locator("button[value=approve]").click()
                page.wait_for_url(f"{base}/ui/studies")
                for name, path in PAGES:
                    page.goto(f"{base}{path}")
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        finally:
            server.should_exit = True
            thread.join(10)
    print(f"wrote {len(PAGES) + 1} screenshots to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "screenshots")
