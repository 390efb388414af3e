"""HTTP routes for registry callbacks, on Odoo's own HTTP stack (the FastAPI
routers of spp_dci_client_crvs/_dr/_ibr are replaced too: see
models/fastapi_endpoint.py).  A registry is told
`<our_callback_uri>` = https://<odoo>/dci/callback/<source code>, and posts
to .../on-search, .../on-subscribe, .../notify (also under .../registry/).
The raw body and the headers go to dci_receive; its status and JSON are the
answer."""
import logging

from odoo import http
from odoo.http import request

from ..services import callbacks

_logger = logging.getLogger(__name__)


class DCICallbackController(http.Controller):
    @http.route(["/dci/callback/<string:source>/<path:action>"], type="http", auth="none", methods=["POST"],
                csrf=False, save_session=False)
    def dci_callback(self, source, action=None, **_kw):
        hreq = request.httprequest
        if (getattr(hreq, "content_length", None) or 0) > callbacks.MAX_BODY:   # refused before it is read
            return request.make_json_response(callbacks._nack("err.request.too_large", "the message is too large"),
                                              status=413)
        # at most one byte over the limit is read: a chunked body has no
        # Content-Length, and get_data() would read all of it into memory
        body = callbacks.read_bounded(hreq.stream, callbacks.MAX_BODY)
        if len(body) > callbacks.MAX_BODY:
            return request.make_json_response(callbacks._nack("err.request.too_large", "the message is too large"),
                                              status=413)
        env = request.env(su=True)
        status, answer = callbacks.receive(env, source, body, list(hreq.headers.items()))
        return request.make_json_response(answer, status=status)
