"""``python -m bot.healthcheck``: exit 0 when the local membot's ``/healthz`` answers 200, else 1 (for Docker).

Standard library only, so a check every 30 s costs a few milliseconds, not membot's imports. It asks
127.0.0.1 at ``MEMBOT_HTTP_PORT`` (default 8080), or ``MEMBOT_HTTP_HOST`` when that names one interface.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

ANY_ADDRESS = {"", "0.0.0.0", "::", "127.0.0.1", "localhost"}


def healthz_url(environ: dict[str, str]) -> str | None:
    port = environ.get("MEMBOT_HTTP_PORT", "8080").strip()
    if not port:
        return None
    host = environ.get("MEMBOT_HTTP_HOST", "").strip()
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    return f"http://{host}:{port}/healthz"


def main() -> int:
    url = healthz_url(dict(os.environ))
    if url is None:
        print("MEMBOT_HTTP_PORT is empty: the health endpoint is off", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as exc:  # 503: say which component is down
        try:
            print(json.dumps(json.load(exc)), file=sys.stderr)
        except ValueError:
            print(f"{url}: {exc.code}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
