"""A subscriber that uses the PyPI ``convex`` client the way an app would.

``python tests/convex_runtime/subscriber.py URL TOKEN FUNCTION ARGS_JSON`` signs in
with TOKEN, subscribes to FUNCTION and prints every value the subscription
yields as one JSON line (``{"error": ...}`` for a failure). It runs in its own
process: the client blocks the thread that iterates it, so it must never share
a process with gevent (Locust).
"""

from __future__ import annotations

import json
import sys

from convex import ConvexClient, ConvexError


def main(url: str, token: str, function: str, args_json: str) -> None:
    client = ConvexClient(url)
    client.set_auth(token)
    try:
        for value in client.subscribe(function, json.loads(args_json)):
            print(json.dumps(value), flush=True)
    except ConvexError as exc:
        print(json.dumps({"error": exc.data}), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
