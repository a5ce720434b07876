"""Headless Chromium driven over the Chrome DevTools Protocol, for the claim page test.

Debian's `chromium` (installed by `make test`) and the already-pinned `websockets` package, nothing
else. The browser is started with a throw-away profile and a DevTools port the OS picks; one page
(a flat CDP session) records every request it makes, and every script error, console error and
Content-Security-Policy violation, so a test can assert on them. Interaction is done like a user
does it: real mouse clicks at an element's centre (refused if the element is hidden, disabled or
covered), typed text, a choice picked in a <select>.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = os.environ.get("BORNE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--remote-debugging-port=0")


class BrowserError(AssertionError):
    pass


class Page:
    """One tab, through a flat CDP session of the browser's connection."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        self.requests: list[str] = []  # every URL the page asked for, in order
        self.errors: list[str] = []  # exceptions, console errors, CSP and other browser errors
        self.http_errors: list[str] = []  # "Failed to load resource: ... 401" and the like
        self._loaded = asyncio.Event()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session)

    def on_event(self, method: str, p: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])
        elif method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            self.errors.append("exception: " + (d.get("exception") or {}).get(
                "description", d.get("text", "?")))
        elif method == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
            self.errors.append("console: " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
            e = p["entry"]
            line = f"{e['source']}: {e['text']} {e.get('url', '')}".rstrip()
            # An HTTP error status is an answer the page handles, not a fault in it.
            (self.http_errors if e["source"] == "network" else self.errors).append(line)

    async def goto(self, url: str, timeout: float = 15) -> None:
        self._loaded.clear()
        r = await self.send("Page.navigate", url=url)
        if r.get("errorText"):
            raise BrowserError(f"cannot open {url}: {r['errorText']}")
        try:
            await asyncio.wait_for(self._loaded.wait(), timeout)
        except TimeoutError:
            raise BrowserError(f"{url} did not finish loading within {timeout} s") from None

    async def eval(self, expr: str) -> Any:
        r = await self.send("Runtime.evaluate", expression=expr, returnByValue=True,
                            awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError(f"{expr!r} threw: "
                               f"{(d.get('exception') or {}).get('description', d['text'])}")
        return r["result"].get("value")

    async def wait_for(self, expr: str, what: str, timeout: float = 15) -> Any:
        """Evaluate `expr` until it is truthy (a bounded wait); its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            v = await self.eval(expr)
            if v:
                return v
            if loop.time() > deadline:
                raise BrowserError(f"timed out after {timeout} s waiting for {what} "
                                   f"(page says: {await self.text('body')!r})")
            await asyncio.sleep(0.05)

    async def _element(self, sel: str, action: str) -> None:
        ok = await self.eval(f"!!document.querySelector({json.dumps(sel)})")
        if not ok:
            raise BrowserError(f"cannot {action} {sel}: no such element")

    async def click(self, sel: str) -> None:
        """A mouse click at the element's centre, as a finger or pointer would do it."""
        await self._element(sel, "click")
        box = await self.eval(f"""(() => {{
          const e = document.querySelector({json.dumps(sel)});
          e.scrollIntoView({{block: 'center'}});
          const r = e.getBoundingClientRect(), x = r.x + r.width / 2, y = r.y + r.height / 2;
          const hit = document.elementFromPoint(x, y);
          return {{x, y, w: r.width, h: r.height, disabled: !!e.disabled,
                   reaches: !!hit && (hit === e || e.contains(hit) || hit.contains(e))}};
        }})()""")
        if not box["w"] or not box["h"]:
            raise BrowserError(f"cannot click {sel}: it is not visible")
        if box["disabled"] or not box["reaches"]:
            raise BrowserError(f"cannot click {sel}: "
                               f"{'disabled' if box['disabled'] else 'covered by another element'}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"],
                            button="left" if kind != "mouseMoved" else "none", clickCount=1)

    async def type(self, sel: str, text: str) -> None:
        """Click into a field, select what it holds and type `text` over it."""
        await self.click(sel)
        focused = await self.eval(
            f"document.activeElement === document.querySelector({json.dumps(sel)})")
        if not focused:
            raise BrowserError(f"cannot type into {sel}: clicking it did not focus it")
        await self.eval("document.activeElement.select()")
        await self.send("Input.insertText", text=text)

    async def select(self, sel: str, label: str) -> None:
        """Pick the option whose text is `label` in a <select> (what the native picker does:
        the value changes and `input` and `change` fire)."""
        await self._element(sel, "select in")
        box = await self.eval(f"document.querySelector({json.dumps(sel)})"
                              ".getBoundingClientRect().height")
        if not box:
            raise BrowserError(f"cannot select in {sel}: it is not visible")
        found = await self.eval(f"""(() => {{
          const s = document.querySelector({json.dumps(sel)});
          const o = [...s.options].find(o => o.textContent.trim() === {json.dumps(label)});
          if (!o) return [...s.options].map(o => o.textContent);
          s.value = o.value;
          s.dispatchEvent(new Event('input', {{bubbles: true}}));
          s.dispatchEvent(new Event('change', {{bubbles: true}}));
          return true;
        }})()""")
        if found is not True:
            raise BrowserError(f"{sel} has no option {label!r}; it offers {found}")

    async def text(self, sel: str) -> str:
        v = await self.eval(f"(document.querySelector({json.dumps(sel)}) || {{}}).innerText")
        return v or ""

    async def visible(self, sel: str) -> bool:
        return bool(await self.eval(
            f"(e => !!e && e.getClientRects().length > 0)"
            f"(document.querySelector({json.dumps(sel)}))"))

    async def screenshot(self, path: Path) -> None:
        """The whole page as a PNG."""
        r = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(r["data"]))


class Browser:
    def __init__(self, proc: asyncio.subprocess.Process, ws: ClientConnection) -> None:
        self.proc = proc
        self.ws = ws
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                m = json.loads(raw)
                if "id" in m:
                    f = self._waiting.pop(m["id"], None)
                    if f and not f.done():
                        f.set_result(m)
                elif (page := self._pages.get(m.get("sessionId", ""))) is not None:
                    page.on_event(m["method"], m.get("params", {}))
        finally:
            for f in self._waiting.values():
                if not f.done():
                    f.set_exception(BrowserError("the browser closed its DevTools connection"))

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None, timeout: float = 15) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        await self.ws.send(json.dumps(msg))
        try:
            m = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise BrowserError(f"the browser did not answer {method} within {timeout} s") from None
        if "error" in m:
            raise BrowserError(f"{method} failed: {m['error']}")
        result: dict[str, Any] = m["result"]
        return result

    async def new_page(self, width: int = 390, height: int = 844, scale: float = 2) -> Page:
        """A tab with a phone's screen (CSS pixels, device pixel ratio, touch, mobile UA)."""
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget",
                                   {"targetId": target, "flatten": True}))["sessionId"]
        page = self._pages[session] = Page(self, session)
        for domain in ("Page", "Network", "Runtime", "Log"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                        deviceScaleFactor=scale, mobile=True)
        await page.send("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=5)
        await page.send("Emulation.setUserAgentOverride", userAgent=(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/130.0.0.0 Mobile Safari/537.36"))
        return page


@contextlib.asynccontextmanager
async def launch(timeout: float = 30) -> AsyncIterator[Browser]:
    """Start headless Chromium; stop it (its whole process group) on the way out."""
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserError(
            f"Chromium is not installed at {CHROMIUM}: `make test` installs Debian's `chromium` "
            "with apt-get (as root, or through `sudo -n`); install it, or point BORNE_CHROMIUM "
            "at a Chromium binary")
    with tempfile.TemporaryDirectory(prefix="borne-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        assert proc.stderr is not None
        said: list[str] = []
        drain: asyncio.Task[None] | None = None
        try:
            url = await asyncio.wait_for(_devtools_url(proc.stderr, said), timeout)
            if url is None:
                raise BrowserError("Chromium exited before it listened for DevTools:\n"
                                   + "\n".join(said[-20:]))

            async def _drain() -> None:  # keep reading stderr so Chromium never blocks on it
                assert proc.stderr is not None
                while await proc.stderr.readline():
                    pass

            drain = asyncio.get_running_loop().create_task(_drain())
            async with connect(url, max_size=None, ping_interval=None) as ws:
                b = Browser(proc, ws)
                try:
                    yield b
                finally:
                    with contextlib.suppress(Exception):
                        await b.send("Browser.close", timeout=5)
                    b._reader.cancel()
        except TimeoutError:
            raise BrowserError(f"Chromium did not open its DevTools port within {timeout} s:\n"
                               + "\n".join(said[-20:])) from None
        finally:
            await _stop(proc)
            if drain:
                drain.cancel()


async def _devtools_url(stream: asyncio.StreamReader, said: list[str]) -> str | None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        said.append(text)
        if m := re.search(r"DevTools listening on (ws://\S+)", text):
            return m.group(1)
    return None


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)
    # Chromium's helpers (renderer, GPU, zygote) share its process group, which is ours alone
    # (start_new_session): whatever is left of it, or a browser that did not close, goes now.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
