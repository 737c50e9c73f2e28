"""moto's server, with DynamoDB requests applied one at a time, and
CodePipeline's ListActionExecutions answered as AWS answers it.

Real DynamoDB applies each conditional write atomically; moto's threaded
server can interleave two of them (seen here: two winners of one
`attribute_not_exists(pk)` PutItem in 1 of 300 four-way races), which would
show our race suite double incidents the real service never produces. Every
other service keeps moto's threading.

moto 5.2.5 does not implement CodePipeline `ListActionExecutions`: it
answers an HTML 500, which the functions rightly take for "AWS said later"
and retry. Real CodePipeline answers `PipelineNotFoundException` (400) for a
pipeline that does not exist and, for one that does, its action executions;
here that list is empty (moto keeps no action executions), as AWS answers
for an execution whose actions have not run. The functions' retry of a
throttled or failing read stays as it must be in AWS; the test bed is made
faithful instead.

The server runs as the fixtures' account (MOTO_ACCOUNT_ID, set by
scripts/moto.sh), and moto lets that variable win over everything else,
also over the credentials of an assumed role. In AWS, credentials from
`AssumeRole` into `arn:aws:iam::<member>:role/<name>` act in the member
account; here too: a request signed with an access key STS issued for a
role acts in that role's account, every other request in MOTO_ACCOUNT_ID.

Usage: moto_server_atomic.py HOST PORT
"""

import json
import os
import sys
import threading

from moto.codepipeline.exceptions import PipelineNotFoundException
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.responses import BaseResponse
from moto.iam.models import get_account_id_from
from moto.codepipeline.responses import CodePipelineResponse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

DYNAMODB = threading.Lock()


def list_action_executions(self: CodePipelineResponse) -> str:
    name = self._get_param("pipelineName")
    if name not in self.codepipeline_backend.pipelines:
        raise PipelineNotFoundException(f"Account '{self.current_account}' does not have a pipeline with name '{name}'")
    return json.dumps({"actionExecutionDetails": []})


CodePipelineResponse.list_action_executions = list_action_executions  # type: ignore[attr-defined]

_own_account = BaseResponse.get_current_account


def current_account(self: BaseResponse) -> str:
    # An access key issued by AssumeRole is kept by IAM in the role's account.
    issued_in = get_account_id_from(self.get_access_key())
    return issued_in if issued_in != DEFAULT_ACCOUNT_ID else _own_account(self)


BaseResponse.get_current_account = current_account  # type: ignore[method-assign]


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
