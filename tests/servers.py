"""Reading the URL a server command prints, past whatever libraries print before it."""

import re
import subprocess

URL = re.compile(r"http://127\.0\.0\.1:\d+/")


def read_url(server: subprocess.Popen, max_lines: int = 50) -> str:
    """The first loopback URL on the server's stdout (pyfluidsynth prints a line of its own when CI is set)."""
    seen = []
    for _ in range(max_lines):
        line = server.stdout.readline()
        if not line:
            break
        found = URL.search(line)
        if found:
            return found.group(0)
        seen.append(line)
    server.kill()
    raise AssertionError(f"the server printed {seen!r} and no URL; stderr: {server.stderr.read()[-2000:]}")
