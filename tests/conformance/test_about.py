"""xAPI-Communication 2.8 "About Resource" (and the general request rules as they apply to it)."""

from __future__ import annotations

import re

from tests.conformance.support import basic_auth

ABOUT = "/xapi/about"


async def test_2_8_s5_b1_version_lists_the_latest_patch_of_each_major_version(client):
    """Communication 2.8.s5.b1: "An LRS MUST return the JSON document described above, with a "version"
    property that includes the latest minor and patch version the LRS conforms to, for each major version."
    (1.0.3 for 1.x; 2.0.0 for the 2.0 standard this LRS also follows)."""
    response = await client.get(ABOUT, headers={"X-Experience-API-Version": "1.0.3"})
    assert response.status == 200
    assert response.content_type == "application/json"
    about = await response.json()
    assert isinstance(about["version"], list)
    assert "1.0.3" in about["version"] and "2.0.0" in about["version"]
    for version in about["version"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), version


async def test_2_8_s5_b2_no_properties_outside_version_and_extensions(client):
    """Communication 2.8.s5.b2: "Additional properties MUST NOT be added to this object outside of
    extensions and each property MUST occur only once."."""
    response = await client.get(ABOUT)
    text = await response.text()
    about = await response.json()
    assert set(about) <= {"version", "extensions"}
    for name in about:
        assert text.count(f'"{name}"') == 1
    if "extensions" in about:
        assert isinstance(about["extensions"], dict)


async def test_2_8_s5_b3_about_allows_unauthenticated_access(client):
    """Communication 2.8.s5.b3: "An LRS SHOULD allow unauthenticated access to this resource."."""
    assert (await client.get(ABOUT)).status == 200
    assert (await client.get(ABOUT, headers={"Authorization": basic_auth("nobody", "wrong")})).status == 200


async def test_2_8_s5_b4_about_does_not_reject_on_the_version_header(client):
    """Communication 2.8.s5.b4: "An LRS MUST NOT reject requests based on their version header as would
    otherwise be required by Versioning."."""
    for version in (None, "", "0.9", "0.95", "1.1.0", "3.0.0", "garbage"):
        extra = {} if version is None else {"X-Experience-API-Version": version}
        response = await client.get(ABOUT, headers=extra)
        assert response.status == 200, version
        assert "version" in await response.json()


async def test_1_1_s3_b1_head_about_answers_without_a_body(client):
    """Communication 1.1.s3.b1: "The LRS MUST respond to any HTTP HEAD request as it would have responded to
    an otherwise identical HTTP GET request except: The message-body MUST be omitted."."""
    response = await client.head(ABOUT)
    assert response.status == 200
    assert await response.read() == b""
    assert response.content_type == "application/json"


async def test_3_3_s3_b1_about_responses_have_the_version_header(client):
    """Communication 3.3.s3.b1: "The LRS MUST include the "X-Experience-API-Version" header in every
    response." (the About resource, whatever the request's version header)."""
    for extra in ({}, {"X-Experience-API-Version": "1.0.3"}, {"X-Experience-API-Version": "2.0.0"}):
        response = await client.get(ABOUT, headers=extra)
        assert response.headers.get("X-Experience-API-Version"), extra
