"""GeoReport v2 answers in the format the client asked for (issue #13, item 6).

GeoReport v2's default format is XML, and clients such as FixMyStreet's only ask for
`services.xml` / `requests.xml`; JSON is served as before. Errors of 4xx are GeoReport error
lists (`[{"code", "description"}]`, or `<errors><error>…`) in the asked format, also for paths
and methods FastAPI itself refuses under /open311/.

XML shapes (wiki.open311.org/GeoReport_v2):
  <services><service><service_code>…</service_code>…</service></services>
  <service_requests><request><service_request_id>…</service_request_id>…</request></service_requests>
  <errors><error><code>400</code><description>…</description></error></errors>
  <discovery><changeset/><contact/><key_service/><endpoints><endpoint>…</endpoint></endpoints></discovery>
"""
from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from fastapi.responses import JSONResponse, Response

FORMATS = ("json", "xml")
XML_TYPE = "text/xml; charset=utf-8"
# list kind -> (root element, item element)
ROOTS = {"services": ("services", "service"), "requests": ("service_requests", "request"),
         "errors": ("errors", "error")}


def _value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return escape(str(v))


def _element(name: str, v: Any) -> str:
    if isinstance(v, dict):
        return f"<{name}>" + "".join(_element(k, x) for k, x in v.items()) + f"</{name}>"
    if isinstance(v, list):  # a list inside an item: the singular of the element name per value
        single = name[:-1] if name.endswith("s") else name
        return f"<{name}>" + "".join(_element(single, x) for x in v) + f"</{name}>"
    text = _value(v)
    return f"<{name}>{text}</{name}>" if text else f"<{name}/>"


def to_xml(kind: str, items: list[dict[str, Any]] | dict[str, Any]) -> str:
    head = '<?xml version="1.0" encoding="utf-8"?>'
    if isinstance(items, dict):  # one document (discovery)
        return head + _element(kind, items)
    root, item = ROOTS[kind]
    return head + f"<{root}>" + "".join(_element(item, i) for i in items) + f"</{root}>"


def respond(fmt: str, kind: str, data: Any, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(to_xml(kind, data), status_code=status, media_type=XML_TYPE)
    return JSONResponse(data, status_code=status)


def error(status: int, description: str, fmt: str = "json") -> Response:
    """GeoReport v2 errors: a list of {code, description}, in the asked format."""
    return respond(fmt if fmt in FORMATS else "json", "errors", [{"code": status, "description": description}],
                   status)


def fmt_of_path(path: str) -> str:
    return "xml" if path.rstrip("/").endswith(".xml") else "json"


def install_error_lists(app, prefix: str = "/open311/") -> None:
    """4xx under /open311/ (unknown path, wrong method, bad parameters) as GeoReport error lists;
    every other path keeps the hub's own handlers."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    previous_http = app.exception_handlers.get(HTTPException)
    previous_validation = app.exception_handlers.get(RequestValidationError)

    async def on_http(request, exc):
        if request.url.path.startswith(prefix) and 400 <= exc.status_code < 500:
            return error(exc.status_code, str(exc.detail), fmt_of_path(request.url.path))
        if previous_http is not None:
            return await previous_http(request, exc)
        from fastapi.exception_handlers import http_exception_handler

        return await http_exception_handler(request, exc)

    async def on_validation(request, exc):
        if request.url.path.startswith(prefix):
            problems = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
            return error(400, problems or "invalid request", fmt_of_path(request.url.path))
        if previous_validation is not None:
            return await previous_validation(request, exc)
        from fastapi.exception_handlers import request_validation_exception_handler

        return await request_validation_exception_handler(request, exc)

    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
