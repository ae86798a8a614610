"""The text guard's quick test (:func:`lrs.http.text_guard.may_carry_nul`)
never passes a request the full check (:func:`unstorable_part`) refuses."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request
from hypothesis import given, strategies as st
from multidict import CIMultiDict

from lrs.http.text_guard import may_carry_nul, unstorable_part

# Targets with NULs written every way a client could: raw, percent-encoded,
# in the path, a query name and a query value, among other escapes.
PIECES = st.sampled_from(["a", "/", "%00", "\x00", "%2500", "%20", "+", "%", "0", "?", "&", "=", "%c3%a9", "é"])


def _request(target: str, headers: dict[str, str]):
    return make_mocked_request("GET", target, headers=CIMultiDict(headers))


@given(st.lists(PIECES, max_size=12), st.text(max_size=8))
def test_whatever_the_full_check_refuses_the_quick_test_passes_on(pieces, header_value):
    target = "/xapi/" + "".join(pieces)
    try:
        request = _request(target, {"X-Thing": header_value})
        place = unstorable_part(request.path, list(request.query.items()), list(request.headers.items()))
    except ValueError:  # a target the URL parser refuses never reaches the middleware
        return
    if place is not None:
        assert may_carry_nul(request.raw_path, request.headers.values()), (target, header_value, place)


def test_each_place_a_nul_can_be():
    for target, headers in [
        ("/xapi/statements%00", {}),
        ("/xapi/statements?verb=a%00b", {}),
        ("/xapi/statements?a%00=b", {}),
        ("/xapi/statements", {"X-Experience-API-Version": "1.0.3\x00"}),
    ]:
        request = _request(target, headers)
        assert unstorable_part(request.path, list(request.query.items()), list(request.headers.items()))
        assert may_carry_nul(request.raw_path, request.headers.values())


def test_a_request_without_one_skips_the_full_check():
    request = _request("/xapi/statements?verb=http%3A%2F%2Fexample.org%2Fv&since=2026-12-07T00%3A00%3A00Z",
                       {"Authorization": "Basic eDp5", "X-Experience-API-Version": "1.0.3"})
    assert not may_carry_nul(request.raw_path, request.headers.values())
