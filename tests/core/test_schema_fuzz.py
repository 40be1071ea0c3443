"""Schemathesis on the OpenAPI schema, as an intake key and as a logged-in admin: every
documented operation with generated valid and invalid requests. 0 server errors (5xx) and 0
responses that do not match the schema (422 bodies included). Bounded examples per operation
so the whole run stays well under a minute; prints the cases tried and the failures found."""
from __future__ import annotations

import time
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from tests.web.conftest import csrf_of, login, seed_known  # noqa: E402

EXAMPLES = 4  # per operation, identity and mode
CHECKS = [not_a_server_error, response_schema_conformance]


def _send(client, case, headers):
    kw = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    kw.pop("auth", None)
    cookies = kw.pop("cookies", None) or {}
    data = kw.pop("data", None)
    if isinstance(data, (bytes, str)):
        kw["content"] = data
    elif data is not None:
        kw["data"] = data
    for k, v in cookies.items():
        client.cookies.set(k, v)
    return client.request(**kw)


def test_openapi_operations_give_no_5xx_and_match_the_schema(sqlite_client, cfg, make_key):
    client = sqlite_client
    seed_known(cfg)
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    intake = make_key("intake", name="fuzz-intake")
    assert login(client, "admin").status_code == 303
    csrf = csrf_of(client.get("/masuk").text)  # the session's token (unchanged until logout)
    session_cookies = dict(client.cookies)
    identities = [("intake key", intake, False), ("admin session", {"X-CSRF-Token": csrf}, True)]
    tried, failures, statuses = Counter(), [], Counter()
    started = time.perf_counter()
    ops = [r.ok() for r in schema.get_all_operations()]
    per_op: Counter = Counter()
    for op in ops:
        op_started = time.perf_counter()
        for who, headers, with_session in identities:
            # invalid inputs are refused before the caller's role is looked at: once is enough
            modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if with_session else (GenerationMode.POSITIVE,)
            for mode in modes:
                try:
                    strategy = op.as_strategy(generation_mode=mode)
                except Exception as exc:  # an operation with nothing negative to generate
                    if mode is GenerationMode.NEGATIVE:
                        continue
                    raise AssertionError(f"{op.label}: {exc}") from exc

                @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                @given(case=strategy)
                def run(case):
                    client.cookies.clear()
                    if with_session:
                        for k, v in session_cookies.items():
                            client.cookies.set(k, v)
                    tried[who] += 1
                    response = _send(client, case, headers)
                    statuses[response.status_code // 100 * 100] += 1
                    try:
                        case.validate_response(response, checks=CHECKS)
                    except BaseExceptionGroup as group:  # record and go on: the tally shows them all
                        for exc in group.exceptions:
                            failures.append(f"{who} {mode.value} {case.method} {case.formatted_path} -> "
                                            f"{response.status_code}: {getattr(exc, 'title', '')}: "
                                            f"{' '.join(str(exc).split())[:160]}")

                try:
                    run()
                except Unsatisfiable:  # nothing invalid to say to an operation without inputs
                    assert mode is GenerationMode.NEGATIVE, op.label
        per_op[op.label] = time.perf_counter() - op_started
    took = time.perf_counter() - started
    print(f"\nschemathesis: {len(ops)} operations, {sum(tried.values())} cases ({dict(tried)}), "
          f"statuses {dict(sorted(statuses.items()))}, {len(failures)} failures, {took:.1f}s")
    print("  slowest: " + ", ".join(f"{k} {v:.1f}s" for k, v in per_op.most_common(4)))
    for f in failures[:40]:
        print("  " + f)
    assert statuses[500] == 0
    assert failures == []
