"""Headless Chromium for the tests that open pages the way a person would (Debian package `chromium`)."""

import shutil
import subprocess
import tempfile

# As the machine's own probe runs it: as root, offline, no first-run or background traffic.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def run_chromium(*arguments: str, timeout: float = 90) -> subprocess.CompletedProcess:
    """Run Chromium with a fresh profile; returns the finished process (stdout, stderr as text)."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium_binary(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
