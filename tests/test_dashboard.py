"""The dashboard end to end: headless Chromium against a real `picloud serve` subprocess."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

# The machine is shared: give assertions more slack than Playwright's 5 s default.
expect.set_options(timeout=10_000)

TOKEN = "pc_admin_dashboard-e2e-0123456789"
SHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
SHARED: dict[str, str] = {}  # what one step hands the next (the flow runs in file order)
CALLS: set[tuple[str, str]] = set()  # (method, path) of every API request the page made
DESKTOP = {"width": 1280, "height": 800}

BROKEN = """from picloud.sdk import log


def handle(ctx):
    x = = 1
"""
HELLO = """from picloud.sdk import log


def handle(ctx):
    log.info("hello from the dashboard test")
    return {"echo": ctx["request"]["json"]}
"""
ON_WIDGET = """from picloud.sdk import log


def handle(ctx):
    log.info("widget changed: " + ctx["event"]["key"])
"""
FAILING = """def handle(ctx):
    raise RuntimeError("this handler always fails")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"picloud serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("picloud serve did not become ready")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("dashboard-state")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLOUD_")}
    env.update(
        PICLOUD_STATE_DIR=str(state),
        PICLOUD_ADMIN_TOKEN=TOKEN,
        PICLOUD_BIND=f"127.0.0.1:{port}",
    )
    log = (state / "daemon.log").open("wb")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "picloud", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        try:
            _wait_ready(url, proc)
        except RuntimeError as exc:
            log.flush()
            raise RuntimeError(f"{exc}:\n{(state / 'daemon.log').read_text()[-2000:]}") from None
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, base_url=base_url)
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("request", lambda req: _record(req.method, req.url))
    tab.goto(base_url)
    yield tab
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def _record(method: str, url: str) -> None:
    path = urllib.parse.urlsplit(url).path
    if path.startswith("/api/"):
        CALLS.add((method, path))


def _go(page: Page, route: str) -> None:
    if page.url.endswith(f"/#/{route}"):
        page.reload()  # the same hash would not re-render the page
    else:
        page.goto(f"/#/{route}")
    expect(page.locator("main h1")).to_be_visible()


def _shoot(page: Page, name: str) -> None:
    """Save the page at desktop and phone width (git-ignored artifacts)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.evaluate("document.getElementById('toasts').replaceChildren(); window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / f"{name}-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=SHOTS / f"{name}-phone.png", full_page=True)
    # Responsive: nothing makes a phone scroll sideways (wide content scrolls in its own box).
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} is {width}px wide on a phone"
    page.set_viewport_size(DESKTOP)


def _deploy_via_api(page: Page, script_id: str, source: str) -> None:
    """A helper script for the trigger steps, through the same documented API."""
    resp = page.request.post(
        "/api/v1/admin/scripts",
        data={"id": script_id, "app": "home", "source": source, "public": True},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status == 201, resp.text()


def test_sign_in_refuses_a_wrong_token_then_accepts_the_right_one(page: Page) -> None:
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    _shoot(page, "signin")
    page.get_by_label("Admin token").fill("wrong-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation")).to_be_visible()
    expect(page.get_by_role("heading", name="Apps", exact=True)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('picloud.token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0


def test_create_an_app_and_a_key_shown_once(page: Page) -> None:
    _go(page, "apps")
    expect(page.get_by_text("No apps yet")).to_be_visible()
    app_id = page.get_by_label("New app id")
    app_id.fill("Bad App")
    page.get_by_role("button", name="Create app").click()
    assert app_id.evaluate("el => el.validity.patternMismatch")
    app_id.fill("home")
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("link", name="home", exact=True)).to_be_visible()
    _shoot(page, "apps")
    app_id.fill("home")
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("alert").filter(has_text="conflict")).to_be_visible()
    page.get_by_role("link", name="home", exact=True).click()
    expect(page.get_by_role("heading", name="App: home", exact=True)).to_be_visible()
    page.get_by_role("button", name="New API key").click()
    key = page.locator("code.key")
    expect(key).to_contain_text("pc_")
    SHARED["key"] = key.inner_text()
    page.get_by_label("Name").fill("GREETING")
    page.get_by_label("Value").fill("hi")
    page.get_by_role("button", name="Set secret").click()
    expect(page.get_by_role("cell", name="GREETING")).to_be_visible()
    _shoot(page, "app")


def test_deploy_marks_the_syntax_error_line_then_deploys_the_fix(page: Page) -> None:
    _go(page, "scripts/new")
    page.get_by_label("Script id").fill("hello")
    expect(page.locator("select.app-picker")).to_have_value("home")
    editor = page.get_by_label("Script source")
    editor.fill(BROKEN)
    page.get_by_role("button", name="Create and deploy").click()
    expect(page.locator(".ed-gutter .err")).to_have_text("5")
    expect(page.locator(".ed-note")).to_contain_text("Line 5")
    expect(page.locator(".ed-band")).to_be_visible()
    _shoot(page, "editor-error")
    editor.fill(HELLO)
    page.get_by_role("button", name="Create and deploy").click()
    expect(page.get_by_role("heading", name="Script: hello", exact=True)).to_be_visible()
    expect(page.locator(".ed-hl .t-k").first).to_have_text("from")
    expect(page.locator(".ed-gutter .err")).to_have_count(0)


def test_new_version_diff_and_rollback(page: Page) -> None:
    _go(page, "scripts/hello")
    editor = page.get_by_label("Script source")
    expect(editor).to_have_value(HELLO)
    editor.fill(HELLO.replace("hello from", "hi from"))
    expect(page.get_by_text("unsaved changes")).to_be_visible()
    page.get_by_role("button", name="Deploy").click()
    expect(page.locator(".section-meta")).to_contain_text("v2")
    expect(page.get_by_text("unsaved changes")).to_be_hidden()
    row = page.get_by_role("row").filter(has_text="v1")
    row.get_by_role("button", name="Diff").click()
    expect(page.locator("pre.diff .d-del")).to_contain_text("hello from")
    expect(page.locator("pre.diff .d-add")).to_contain_text("hi from")
    _shoot(page, "script")
    row.get_by_role("button", name="Roll back").click()
    page.get_by_role("dialog").get_by_role("button", name="Roll back").click()
    expect(page.locator(".section-meta")).to_contain_text("v3")
    expect(editor).to_have_value(HELLO)
    expect(page.get_by_text("rollback to v1")).to_be_visible()


def test_invoke_shows_response_and_the_runs_log(page: Page) -> None:
    _go(page, "invoke/hello")
    page.get_by_label("Method").select_option("POST")
    page.get_by_label("Body").fill('{"n": 42}')
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".status-code")).to_contain_text("200")
    expect(page.locator("pre.out").nth(1)).to_contain_text('"n": 42')
    expect(page.locator("pre.log")).to_contain_text("hello from the dashboard test")
    _shoot(page, "invoke")


def test_a_private_script_needs_the_app_key_in_the_console(page: Page) -> None:
    _go(page, "scripts/hello")
    page.get_by_label("Public (callable without an API key)").uncheck()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Settings saved")).to_be_visible()
    _go(page, "invoke/hello")
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".status-code")).to_contain_text("401")
    expect(page.locator("pre.out").nth(1)).to_contain_text("unauthorized")
    page.get_by_label("API key").fill(SHARED["key"])
    page.get_by_role("button", name="Send").click()
    expect(page.locator(".status-code")).to_contain_text("200")
    expect(page.locator("pre.log")).to_contain_text("hello from the dashboard test")


def test_invocations_list_is_live(page: Page) -> None:
    _go(page, "invocations?script=hello")
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    before = rows.count()
    resp = page.request.post(
        "/api/v1/execute/hello/live", data={"n": 1}, headers={"X-PiCloud-Key": SHARED["key"]}
    )
    assert resp.status == 200, resp.text()
    expect(rows).to_have_count(before + 1, timeout=8_000)  # no reload: the list refreshes


def test_invocations_list_and_one_with_its_log(page: Page) -> None:
    _go(page, "invocations?script=hello")
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    expect(rows.first).to_contain_text("ok")
    _shoot(page, "invocations")
    rows.first.locator("a").click()
    expect(page.get_by_role("heading", name="Invocation", exact=True)).to_be_visible()
    expect(page.locator("pre.log")).to_contain_text("hello from the dashboard test")
    _shoot(page, "invocation")


def test_kv_write_and_browse(page: Page) -> None:
    _go(page, "kv/home/widgets")
    expect(page.get_by_text("This collection is empty")).to_be_visible()
    page.get_by_label("Key", exact=True).fill("w1")
    page.get_by_label("Value (JSON)").fill("{not json")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Not valid JSON")).to_be_visible()
    page.get_by_label("Value (JSON)").fill('{"colour": "red", "n": 1}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="KV: w1", exact=True)).to_be_visible()
    page.get_by_label("Expires after (seconds)").fill("3600")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved w1")).to_have_count(2)
    expect(page.get_by_label("Value as JSON")).to_have_value('{\n  "colour": "red",\n  "n": 1\n}')
    _shoot(page, "kv-key")
    _go(page, "kv/home/widgets")
    page.get_by_label("Key prefix").fill("w")
    expect(page.get_by_role("link", name="w1")).to_be_visible()
    _shoot(page, "kv-collection")
    page.get_by_label("Key prefix").fill("zzz")
    expect(page.get_by_text('No keys start with "zzz"')).to_be_visible()
    _go(page, "kv/home")
    expect(page.get_by_role("link", name="widgets")).to_be_visible()
    _shoot(page, "kv")


def test_kv_pages_through_a_collection(page: Page) -> None:
    for n in range(60):
        resp = page.request.put(
            f"/api/v1/admin/apps/home/kv/many/k{n:03d}",
            data={"value": n},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert resp.ok, resp.text()
    _go(page, "kv/home/many")
    expect(page.get_by_role("link", name="k000")).to_be_visible()
    expect(page.get_by_role("link", name="k050")).to_have_count(0)
    page.get_by_role("button", name="Next →").click()
    expect(page.get_by_role("link", name="k050")).to_be_visible()
    expect(page.get_by_role("link", name="k000")).to_have_count(0)
    expect(page.get_by_role("button", name="Next →")).to_be_disabled()
    page.get_by_role("button", name="← Previous").click()
    expect(page.get_by_role("link", name="k000")).to_be_visible()
    page.get_by_label("Key prefix").fill("k05")
    expect(page.locator("tbody tr")).to_have_count(10)
    page.get_by_role("link", name="k059").click()
    page.get_by_role("button", name="Delete key").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleted k059")).to_be_visible()
    expect(page.get_by_role("heading", name="KV: home / many", exact=True)).to_be_visible()
    page.get_by_label("Key prefix").fill("k059")
    expect(page.get_by_text('No keys start with "k059"')).to_be_visible()


def test_trigger_validation_messages_and_enable_toggle(page: Page) -> None:
    _go(page, "triggers")
    page.get_by_label("Kind").select_option("cron")
    page.get_by_label("Schedule (minute hour day month weekday, UTC)").fill("every five minutes")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.get_by_text("Schedule needs five cron fields")).to_be_visible()
    page.get_by_label("Schedule (minute hour day month weekday, UTC)").fill("61 * * * *")
    page.get_by_role("button", name="Create trigger").click()  # passes the page, not the API
    expect(page.get_by_role("alert").filter(has_text="bad_request")).to_be_visible()
    page.get_by_label("Schedule (minute hour day month weekday, UTC)").fill("*/5 * * * *")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.get_by_role("cell", name="*/5 * * * *")).to_be_visible()
    toggle = page.get_by_role("row").filter(has_text="*/5 * * * *").get_by_role("checkbox")
    toggle.uncheck()
    expect(page.get_by_text("Trigger disabled")).to_be_visible()
    listed = page.request.get(
        "/api/v1/admin/triggers?app=home", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    assert [t["enabled"] for t in listed["items"] if t["kind"] == "cron"] == [False]
    row = page.get_by_role("row").filter(has_text="*/5 * * * *")
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("cell", name="*/5 * * * *")).to_have_count(0)


def test_a_kv_trigger_fires_on_a_dashboard_write(page: Page) -> None:
    _deploy_via_api(page, "on-widget", ON_WIDGET)
    _go(page, "triggers")
    expect(page.get_by_text("No triggers")).to_be_visible()
    page.get_by_label("Script", exact=True).select_option("on-widget")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.get_by_text("Collection: 1-64")).to_be_visible()  # validated here first
    page.get_by_label("Collection").fill("widgets")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.get_by_role("link", name="on-widget")).to_be_visible()
    _go(page, "kv/home/widgets/w2")
    page.get_by_label("Value as JSON").fill('{"colour": "blue"}')
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved w2")).to_be_visible()
    _go(page, "invocations?script=on-widget")
    expect(page.locator("tbody tr").first).to_contain_text("kv", timeout=20_000)
    page.locator("tbody tr a").first.click()
    expect(page.locator("pre.log")).to_contain_text("widget changed: w2")
    _go(page, "triggers")
    _shoot(page, "triggers")


def test_a_dead_letter_appears_and_is_replayed(page: Page) -> None:
    _deploy_via_api(page, "always-fails", FAILING)
    _go(page, "triggers")
    page.get_by_label("Script", exact=True).select_option("always-fails")
    page.get_by_label("Collection").fill("doomed")
    page.get_by_label("Max attempts").fill("1")
    page.get_by_role("button", name="Create trigger").click()
    expect(page.get_by_role("link", name="always-fails")).to_be_visible()
    _go(page, "kv/home/doomed/d1")
    page.get_by_label("Value as JSON").fill("1")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved d1")).to_be_visible()
    _go(page, "dead-letters")
    rows = page.locator("tbody tr")
    for _ in range(40):  # delivery is asynchronous: reload until it is dead-lettered
        if rows.count():
            break
        page.wait_for_timeout(500)
        page.reload()
        expect(page.locator("main h1")).to_be_visible()
    expect(rows.first).to_contain_text("always-fails")
    page.get_by_label("Script").fill("on-widget")
    page.get_by_label("Script").press("Enter")
    expect(page.get_by_text("No dead letters")).to_be_visible()
    page.get_by_label("Script").fill("always-fails")
    page.get_by_label("Script").press("Enter")
    expect(rows.first).to_contain_text("always-fails")
    _shoot(page, "dead-letters")
    rows.first.locator("a").click()
    expect(page.locator("pre.log")).to_contain_text("this handler always fails")
    expect(page.locator("main pre.out").last).to_contain_text('"key": "d1"')
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_text("Replayed").first).to_be_visible()
    _shoot(page, "dead-letter")
    dead_id = page.url.rsplit("/", 1)[-1]
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Dead letter deleted")).to_be_visible()
    gone = page.request.get(
        f"/api/v1/admin/dead-letters/{dead_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert gone.status == 404
    _go(page, "triggers")
    row = page.get_by_role("row").filter(has_text="always-fails")
    expect(row.locator("td[data-label=Dead]")).not_to_have_text("0")


def test_system_page_shows_health_and_sandbox(page: Page) -> None:
    _go(page, "system")
    expect(page.get_by_text("Temperature").first).to_be_visible()
    expect(page.get_by_role("heading", name="Sandbox layers in force", exact=True)).to_be_visible()
    # A second sample (3 s later) draws the chart lines.
    line = page.locator("svg.spark .spark-line").first
    expect(line).to_have_attribute("d", re.compile(r"^M[\d.,]+L"), timeout=8_000)
    expect(page.get_by_text("Uptime")).to_be_visible()
    _shoot(page, "system")


def test_diff_and_highlighter_modules(page: Page) -> None:
    """The hand-written LCS diff and Python highlighter, run as the browser loads them."""
    result = page.evaluate(
        """async () => {
            const main = document.querySelector("script[type=module]").src;
            const base = main.replace(/main\\.js$/, "");
            const { diffLines } = await import(base + "diff.js");
            const { highlightPython } = await import(base + "highlight.js");
            const { errorLine } = await import(base + "editor.js");
            const ops = (a, b) => diffLines(a, b).map((r) => r.op + r.text).join("|");
            return {
                same: ops("a\\nb", "a\\nb"),
                change: ops("a\\nb\\nc", "a\\nB\\nc"),
                insert: ops("a\\nc", "a\\nb\\nc"),
                remove: ops("a\\nb\\nc", "a\\nc"),
                numbers: diffLines("x\\ny", "y").map((r) => [r.op, r.a ?? 0, r.b ?? 0]),
                html: highlightPython("def f(x):  # <b>\\n    return 'a<b' + 1\\n"),
                line: [errorLine("line 12: invalid syntax"), errorLine("no line here")],
            };
        }"""
    )
    assert result["same"] == " a| b"
    assert result["change"] == " a|-b|+B| c"
    assert result["insert"] == " a|+b| c"
    assert result["remove"] == " a|-b| c"
    assert result["numbers"] == [["-", 1, 0], [" ", 2, 1]]
    html = result["html"]
    assert '<span class="t-k">def</span> <span class="t-f">f</span>' in html
    assert '<span class="t-c"># &lt;b&gt;</span>' in html
    assert "<span class=\"t-s\">'a&lt;b'</span>" in html
    assert '<span class="t-n">1</span>' in html
    assert "<b>" not in html
    assert result["line"] == [12, 0]


def test_revoke_a_key_and_delete_an_app(page: Page) -> None:
    _go(page, "apps")
    page.get_by_label("New app id").fill("scratch")
    page.get_by_role("button", name="Create app").click()
    page.get_by_role("link", name="scratch", exact=True).click()
    page.get_by_role("button", name="New API key").click()
    expect(page.locator("code.key")).to_contain_text("pc_")
    page.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No API keys")).to_be_visible()
    page.get_by_role("button", name="Delete app").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", name="App: scratch", exact=True)).to_be_visible()
    page.get_by_role("button", name="Delete app").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Apps", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="home", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="scratch", exact=True)).to_have_count(0)


def test_ctrl_s_deploys_from_the_editor(page: Page) -> None:
    _go(page, "scripts/on-widget")
    editor = page.get_by_label("Script source")
    editor.fill(ON_WIDGET + "\n# saved with the keyboard\n")
    editor.press("Control+s")
    expect(page.locator(".section-meta")).to_contain_text("v2")
    expect(page.locator(".ed-hl .t-c").last).to_have_text("# saved with the keyboard")


def test_dark_mode_and_sign_out(page: Page) -> None:
    page.emulate_media(color_scheme="dark")
    _go(page, "scripts")
    expect(page.get_by_role("link", name="hello")).to_be_visible()
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(18, 20, 24)", bg
    _shoot(page, "scripts-dark")
    page.emulate_media(color_scheme="light")
    # A token rotated behind the page's back: the next call returns to the sign-in form.
    page.evaluate("sessionStorage.setItem('picloud.token', 'rotated-away')")
    _go(page, "apps")
    expect(page.get_by_text("Your session has ended")).to_be_visible()
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps", exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('picloud.token')") is None
    page.goto("/#/apps")
    expect(page.get_by_role("heading", name="Sign in", exact=True)).to_be_visible()


def test_keyboard_reaches_every_section(page: Page) -> None:
    page.get_by_label("Admin token").fill(TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("navigation")).to_be_visible()
    page.reload()
    expect(page.get_by_role("navigation")).to_be_visible()
    page.keyboard.press("Tab")  # the skip link first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    labels = set()
    for _ in range(12):
        page.keyboard.press("Tab")
        labels.add(page.evaluate("document.activeElement.textContent"))
    assert {"Apps", "Scripts", "KV", "System", "Sign out"} <= labels


def test_every_call_the_page_made_is_a_documented_api_v1_route(page: Page) -> None:
    doc = page.request.get("/api/v1/openapi.json").json()
    routes = []
    for template, methods in doc["paths"].items():
        if not template.startswith("/api/v1/"):
            continue  # the /api/{tail} catch-all answers 404 and must not count
        pattern = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))
        routes.append((re.compile(f"^{pattern}$"), set(methods)))
    assert len(CALLS) > 20, CALLS
    for method, path in sorted(CALLS):
        allowed = [m for rx, m in routes if rx.match(path)]
        assert any(method.lower() in m or "x-any" in m for m in allowed), (method, path)
