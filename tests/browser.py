"""Drive headless Chromium through the DevTools protocol, for tests of the pages framelab writes.

Debian's ``chromium`` and the ``websockets`` client (already a dependency,
through Ray Serve) are all it needs: no WebDriver, no new package. Every
wait is bounded and names what it waited for; waits are on the browser's own
events or on a promise that resolves in the page, never on a sleep.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--remote-allow-origins=*",
]
WIDTH, HEIGHT = 1280, 900
_WAIT = """(condition, ms) => new Promise((resolve) => {
  const end = performance.now() + ms;
  const check = () => {
    let ok = false;
    try { ok = !!eval(condition); } catch (e) {}
    if (ok) resolve(true); else if (performance.now() > end) resolve(false); else setTimeout(check, 20);
  };
  check();
})"""
_CENTRE = """(selector) => {
  const e = document.querySelector(selector);
  if (!e) return null;
  e.scrollIntoView({block: "center"});
  const b = e.getBoundingClientRect();
  return [b.left + b.width / 2, b.top + b.height / 2];
}"""
_CHOOSE = """(selector, value) => {
  const e = document.querySelector(selector);
  if (!e) return false;
  e.value = value;
  e.dispatchEvent(new Event("input", {bubbles: true}));
  return e.value === value;
}"""


def chromium_path() -> str:
    """The headless Chromium to drive, or skip the test saying how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (apt-get install -y chromium); cannot check the page renders")


class Browser:
    """One headless Chromium and one tab, driven over the DevTools protocol's websocket."""

    def __init__(self, timeout: float = 60.0):
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="framelab-chromium-")
        self.process = subprocess.Popen(
            [chromium_path(), *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={WIDTH},{HEIGHT}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        # Chromium prints "DevTools listening on ws://..." once it listens: that line is the address.
        address = self._listening(timeout)
        if address is None:
            self.close()
            raise TimeoutError(f"headless Chromium did not open its DevTools port within {timeout:.0f}s")
        # Its later output is drained by a thread, so a full pipe never blocks the browser.
        threading.Thread(target=self.process.stderr.read, daemon=True).start()
        self.socket = connect(address, max_size=None, open_timeout=timeout)
        self.next_id = 0
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=WIDTH, height=HEIGHT,
                  deviceScaleFactor=1, mobile=False)

    def _listening(self, timeout: float) -> str | None:
        seen = b""
        deadline = time.monotonic() + timeout
        fd = self.process.stderr.fileno()
        while True:
            found = re.search(rb"DevTools listening on (ws://\S+)", seen)
            if found:
                return found.group(1).decode()
            left = deadline - time.monotonic()
            if left <= 0 or self.process.poll() is not None:
                return None
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                seen += chunk

    def send(self, method: str, session: bool = False, timeout: float = 60.0, **params: Any) -> dict:
        """Send one protocol command and return its result (events that arrive meanwhile are kept)."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium did not answer {method} within {timeout:.0f}s")
            reply = json.loads(self.socket.recv(timeout=left))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, what: str, timeout: float = 60.0) -> dict:
        """Wait for the next protocol event ``method`` (``what`` names it in the error)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waited {timeout:.0f}s for {what} ({method})")
            self.events.append(json.loads(self.socket.recv(timeout=left)))

    def open(self, path: str | Path, timeout: float = 60.0) -> float:
        """Load a page from disk, wait until its script says it is ready; return seconds from navigation to ready."""
        self.events.clear()
        start = time.perf_counter()
        self.send("Page.navigate", session=True, url=Path(path).resolve().as_uri())
        self.wait_event("Page.loadEventFired", f"the page {Path(path).name} to load", timeout)
        self.wait_for("document.body && document.body.dataset.ready === '1'", "the page's script to render", timeout)
        return time.perf_counter() - start

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", session=True, timeout=timeout, expression=expression,
                           returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]} raised: {result['exceptionDetails'].get('exception', {}).get('description')}")
        return result["result"].get("value")

    def call(self, function: str, *args: Any, timeout: float = 60.0) -> Any:
        """Call a JavaScript function (given as source) with JSON arguments; return its (awaited) value."""
        return self.evaluate(f"({function})({', '.join(json.dumps(a) for a in args)})", timeout=timeout)

    def wait_for(self, condition: str, what: str, timeout: float = 30.0) -> None:
        """Wait, in the page, until a JavaScript condition holds (checked every 20 ms by the page's own timer)."""
        done = self.call(_WAIT, condition, int(timeout * 1000), timeout=timeout + 10)
        if not done:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}: {condition}")

    def _centre(self, selector: str) -> tuple[float, float]:
        box = self.call(_CENTRE, selector)
        if box is None:
            raise AssertionError(f"nothing on the page matches {selector!r}")
        return box[0], box[1]

    def mouse(self, kind: str, x: float, y: float, buttons: int = 0) -> None:
        """One real mouse event at page coordinates (``kind``: mouseMoved, mousePressed, mouseReleased)."""
        params: dict[str, Any] = {"type": kind, "x": x, "y": y, "buttons": buttons}
        if kind != "mouseMoved":
            params.update(button="left", clickCount=1)
        self.send("Input.dispatchMouseEvent", session=True, **params)

    def click(self, selector: str) -> None:
        """Click the middle of the first element matching ``selector``, as a user's mouse would."""
        x, y = self._centre(selector)
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, buttons=1)
        self.mouse("mouseReleased", x, y)

    def choose(self, selector: str, value: str) -> None:
        """Set a form field (select or input) to ``value`` and fire its input event, as typing or picking does."""
        found = self.call(_CHOOSE, selector, value)
        assert found, f"could not set {selector!r} to {value!r} (no such field, or no such option)"

    def screenshot(self, path: str | Path) -> Path:
        """Save a PNG of the whole page (beyond the window when the page is longer)."""
        data = self.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the browser and remove its profile."""
        try:
            if getattr(self, "socket", None) is not None:
                self.socket.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
            shutil.rmtree(self.profile, ignore_errors=True)
