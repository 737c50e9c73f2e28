"""moto's server, with DynamoDB requests applied one at a time.

Real DynamoDB applies each conditional write atomically; moto's threaded
server can interleave two of them (seen here: two winners of one
`attribute_not_exists(pk)` PutItem in 1 of 300 four-way races), which would
show our race suite double incidents the real service never produces. Every
other service keeps moto's threading.

Usage: moto_server_atomic.py HOST PORT
"""

import os
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

DYNAMODB = threading.Lock()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))  # as moto_server does: URLs it returns name the port
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True

    def atomic_dynamodb(environ, start_response):
        # data.json dumps every backend: not while a DynamoDB write is half-applied.
        dump = environ.get("PATH_INFO", "").startswith("/moto-api/data.json")
        if not dump and not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with DYNAMODB:
            # Consume the whole body inside the lock: the write is done then.
            return [b"".join(app(environ, start_response))]

    run_simple(host, port, atomic_dynamodb, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
