# The Python HTTP handler of the benches: `wasi:http/incoming-handler` answers every
# request with one line of text.
from wit_world import exports
from componentize_py_types import Ok
from wit_world.imports.types import (
    Fields, IncomingRequest, OutgoingResponse, ResponseOutparam, OutgoingBody,
)

class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain")]))
        body = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        # The stream is a child of the body: dropped (`with`) before the body is finished.
        with body.write() as stream:
            stream.blocking_write_and_flush(b"hello from python\n")
        OutgoingBody.finish(body, None)
