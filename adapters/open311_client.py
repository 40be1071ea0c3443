"""GeoReport v2 (Open311) client: POST a service request to an OPD system that speaks it.

Knows the GeoReport v2 wire format only (form-encoded POST to requests.json, JSON answer).
Never imports hub; never logs the API key.
"""
from __future__ import annotations

from dataclasses import dataclass

import httpx

from adapters.base import PermanentError, SendResult, http_call
from adapters.opd_webhook import classify


@dataclass(frozen=True)
class Open311Target:
    endpoint: str  # base URL, e.g. https://simtaru.example.go.id/open311/v2
    api_key: str
    service_code: str
    jurisdiction_id: str | None = None
    timeout_s: float = 15.0


@dataclass(frozen=True)
class ServiceRequest:
    description: str
    lat: float | None = None
    long: float | None = None
    address_string: str | None = None
    media_url: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    email: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()


def form(target: Open311Target, req: ServiceRequest) -> dict[str, str]:
    """The form fields of a GeoReport v2 POST. A location is required: lat/long or address."""
    if req.lat is None and not req.address_string:
        raise PermanentError("GeoReport v2 needs a location: lat/long or address_string")
    data: dict[str, str] = {"api_key": target.api_key, "service_code": target.service_code,
                            "description": req.description[:4000]}
    if target.jurisdiction_id:
        data["jurisdiction_id"] = target.jurisdiction_id
    if req.lat is not None and req.long is not None:
        data["lat"], data["long"] = repr(float(req.lat)), repr(float(req.long))
    for name in ("address_string", "media_url", "first_name", "last_name", "phone", "email"):
        value = getattr(req, name)
        if value:
            data[name] = str(value)
    for key, value in req.attributes:
        data[f"attribute[{key}]"] = value
    return data


def _errors_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    if isinstance(body, list):
        return "; ".join(f"{e.get('code')}: {e.get('description')}" for e in body if isinstance(e, dict))
    return resp.text


async def post_request(target: Open311Target, req: ServiceRequest,
                       client: httpx.AsyncClient | None = None) -> SendResult:
    """Create the request at the OPD system; the result carries its service_request_id (or token)."""
    url = target.endpoint.rstrip("/") + "/requests.json"
    own = client is None
    client = client or httpx.AsyncClient()
    try:
        with http_call("Open311", target.timeout_s):
            resp = await client.post(url, data=form(target, req), timeout=target.timeout_s,
                                     headers={"accept": "application/json"})
    finally:
        if own:
            await client.aclose()
    if not 200 <= resp.status_code < 300:
        classify(resp.status_code, resp.headers.get("retry-after"), _errors_text(resp))
    try:
        body = resp.json()
    except ValueError:
        raise PermanentError(f"Open311 answer is not JSON: {resp.text[:200]}") from None
    first = body[0] if isinstance(body, list) and body else body if isinstance(body, dict) else {}
    rid = first.get("service_request_id") or first.get("token")
    if not rid:
        raise PermanentError(f"Open311 answer has neither service_request_id nor token: {str(body)[:200]}")
    return SendResult(provider_id=str(rid), detail={"service_request_id": first.get("service_request_id"),
                                                    "token": first.get("token"),
                                                    "service_notice": first.get("service_notice")})


def _matches(item: dict, code: str) -> bool:
    """Is this GeoReport request the one Simpul posted for ticket `code`? By the attribute
    (servers that echo attributes) or the description prefix every Simpul request carries."""
    attrs = item.get("attributes") or item.get("attribute") or {}
    if isinstance(attrs, dict) and str(attrs.get("simpul_code") or "") == code:
        return True
    if isinstance(attrs, list) and any(isinstance(a, dict) and a.get("code") == "simpul_code"
                                       and str(a.get("value")) == code for a in attrs):
        return True
    return str(item.get("description") or "").startswith(f"[Simpul {code}]")


async def find_request(target: Open311Target, code: str, since: str | None = None,
                       client: httpx.AsyncClient | None = None) -> SendResult | None:
    """Look up the request Simpul may already have created for ticket `code` (an earlier POST
    that timed out after the OPD accepted it), so a retry does not create a second one.

    GET requests.json (GeoReport v2 query, from `since`, an ISO time) and match by the
    `simpul_code` attribute or the "[Simpul CODE]" description prefix. None: not there (or the
    server does not support queries: 4xx), so the caller posts. An unreachable server is a
    RetryableError: better late than twice."""
    url = target.endpoint.rstrip("/") + "/requests.json"
    params = {k: v for k, v in {"jurisdiction_id": target.jurisdiction_id, "service_code": target.service_code,
                                "start_date": since, "api_key": target.api_key}.items() if v}
    own = client is None
    client = client or httpx.AsyncClient()
    try:
        resp = await client.get(url, params=params, timeout=target.timeout_s, headers={"accept": "application/json"})
    except httpx.TimeoutException:
        raise RetryableError(f"lookup before re-posting: timeout after {target.timeout_s}s") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"lookup before re-posting: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        if own:
            await client.aclose()
    if resp.status_code >= 500 or resp.status_code == 429:
        classify(resp.status_code, resp.headers.get("retry-after"), _errors_text(resp))
    if not 200 <= resp.status_code < 300:
        return None
    try:
        body = resp.json()
    except ValueError:
        return None
    for item in body if isinstance(body, list) else []:
        if isinstance(item, dict) and _matches(item, code):
            rid = item.get("service_request_id") or item.get("token")
            if rid:
                return SendResult(provider_id=str(rid), detail={
                    "service_request_id": item.get("service_request_id"), "token": item.get("token"),
                    "service_notice": item.get("service_notice"), "found_by_lookup": True})
    return None
