"""The callback routers of spp_dci_client_crvs / _dr / _ibr (FastAPI, app
"dci_api": /crvs, /dr/on-search, /dr/on-subscribe, /ibr/on-search,
/ibr/on-subscribe) replaced by routers of the same paths that hand the raw
body to dci_receive (services/callbacks.py).  The source of each comes
from the system parameters spp_dci_client_sql.callback_source.<crvs|dr|ibr>
(default: the upstream services' default codes)."""
from odoo import models

UPSTREAM_TAGS = {"DCI CRVS Callback", "DCI DR Callback", "DCI IBR Callback"}
DEFAULT_SOURCES = {"crvs": "crvs_main", "dr": "dr_main", "ibr": "ibr_main"}
PATHS = (("crvs", "/crvs"), ("dr", "/dr/on-search"), ("dr", "/dr/on-subscribe"),
         ("ibr", "/ibr/on-search"), ("ibr", "/ibr/on-subscribe"))


def build_router():
    """The FastAPI router (fastapi is imported only here, as upstream does)."""
    from typing import Annotated

    from fastapi import APIRouter, Depends, Request
    from fastapi.responses import JSONResponse

    from odoo.api import Environment

    from odoo.addons.fastapi.dependencies import odoo_env

    from ..services import callbacks

    router = APIRouter(tags=["DCI callbacks (dci_client)"])

    def make(kind):
        async def endpoint(request: Request, env: Annotated[Environment, Depends(odoo_env)]):
            # bounded as the Odoo route: a chunked body has no Content-Length
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > callbacks.MAX_BODY:
                    return JSONResponse(callbacks._nack("err.request.too_large", "the message is too large"),
                                        status_code=413)
                chunks.append(chunk)
            body = b"".join(chunks)
            param = "spp_dci_client_sql.callback_source.%s" % kind
            source = env["ir.config_parameter"].sudo().get_param(param, DEFAULT_SOURCES[kind])
            status, answer = callbacks.receive(env, source, body, list(request.headers.items()), kind=kind)
            return JSONResponse(answer, status_code=status)
        return endpoint

    for kind, path in PATHS:
        router.add_api_route(path, make(kind), methods=["POST"], response_model=None)
    return router


class FastapiEndpoint(models.Model):
    _inherit = "fastapi.endpoint"

    def _get_fastapi_routers(self):
        routers = super()._get_fastapi_routers()
        if self.app != "dci_api":
            return routers
        kept = [r for r in routers if not UPSTREAM_TAGS & set(getattr(r, "tags", None) or ())]
        return kept + [build_router()]
