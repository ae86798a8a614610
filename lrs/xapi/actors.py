"""Actors (Data 2.4.2): Agents, Groups and their inverse functional identifiers."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from lrs.xapi.common import MAILTO_EXPECTED, CheckedMailtoIri, Iri, MailtoIri, Sha1Hex, Strict, match_mailto
from lrs.xapi.errors import XapiError, field_error, from_validation_error
from lrs.xapi.jsontext import check_shape, decode_problem

__all__ = ["Account", "Agent", "Group", "Actor", "parse_agent_param", "ifi_count"]

IFI_NAMES = ("mbox", "mbox_sha1sum", "openid", "account")


class Account(Strict, kw_only=True):
    homePage: Iri
    name: str

    def __post_init__(self) -> None:
        # An account name is a login identifier and part of the Agent's IFI
        # key, which is indexed as text: U+0000 can be neither.
        if "\x00" in self.name:
            raise field_error(".name", "An account `name` must not contain the character U+0000")


def ifi_count(obj: "Agent | Actor | Group") -> int:
    return (
        (obj.mbox is not UNSET)
        + (obj.mbox_sha1sum is not UNSET)
        + (obj.openid is not UNSET)
        + (obj.account is not UNSET)
    )


def _check_agent(obj: "Agent | Actor") -> None:
    n = ifi_count(obj)
    if n != 1:
        raise ValueError(
            "An Agent must have exactly one inverse functional identifier "
            f"(mbox, mbox_sha1sum, openid or account), found {n}"
        )


def _check_group(obj: "Group | Actor") -> None:
    n = ifi_count(obj)
    if n > 1:
        raise ValueError(
            f"An identified Group must have exactly one inverse functional identifier, found {n}"
        )
    if n == 0 and (obj.member is UNSET or not obj.member):
        raise field_error(".member", "An anonymous Group must list its members in `member`")


class Agent(Strict, kw_only=True):
    """An individual; ``objectType`` is optional except as a Statement's object."""

    objectType: Literal["Agent"] | UnsetType = UNSET
    name: str | UnsetType = UNSET
    mbox: MailtoIri | UnsetType = UNSET
    mbox_sha1sum: Sha1Hex | UnsetType = UNSET
    openid: Iri | UnsetType = UNSET
    account: Account | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_agent(self)


class Group(Strict, kw_only=True):
    """A Group (identified, or anonymous with members); members are Agents only."""

    objectType: Literal["Group"]
    name: str | UnsetType = UNSET
    mbox: MailtoIri | UnsetType = UNSET
    mbox_sha1sum: Sha1Hex | UnsetType = UNSET
    openid: Iri | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    member: list[Agent] | UnsetType = UNSET

    def __post_init__(self) -> None:
        _check_group(self)


class Actor(Strict, kw_only=True):
    """An Agent or a Group, told apart by ``objectType`` (absent means Agent).

    One struct carries the fields of both, because the spec lets an Agent omit
    its ``objectType``; the per-type rules are checked here.
    """

    objectType: Literal["Agent", "Group"] | UnsetType = UNSET
    name: str | UnsetType = UNSET
    mbox: CheckedMailtoIri | UnsetType = UNSET
    mbox_sha1sum: Sha1Hex | UnsetType = UNSET
    openid: Iri | UnsetType = UNSET
    account: Account | UnsetType = UNSET
    member: list[Agent] | UnsetType = UNSET

    def __post_init__(self) -> None:
        # Before the rules below: msgspec tested the pattern while decoding.
        if self.mbox is not UNSET and match_mailto(self.mbox) is None:
            raise field_error(".mbox", MAILTO_EXPECTED)
        if self.objectType == "Group":
            _check_group(self)
        else:
            if self.member is not UNSET:
                raise field_error(".member", "`member` is only allowed on a Group")
            # _check_agent, written out: every statement's actor comes here.
            n = (
                (self.mbox is not UNSET)
                + (self.mbox_sha1sum is not UNSET)
                + (self.openid is not UNSET)
                + (self.account is not UNSET)
            )
            if n != 1:
                _check_agent(self)

    @property
    def is_group(self) -> bool:
        return self.objectType == "Group"


_actor_decoder = msgspec.json.Decoder(Actor)


def parse_agent_param(text: str, path: str = "agent") -> dict:
    """Validate an Agent or Group given as JSON in a query parameter named ``path``."""
    try:
        actor = _actor_decoder.decode(text)
    except msgspec.ValidationError as err:
        e = from_validation_error(err, prefix=path)
        raise XapiError(400, f"Invalid `{path}` parameter: {e.message}", e.path) from None
    except (msgspec.DecodeError, UnicodeError, RecursionError) as err:
        problem = decode_problem(text, err, subject="the value").message
        raise XapiError(400, f"Invalid `{path}` parameter: not JSON: {problem}", path) from None
    agent = msgspec.to_builtins(actor)
    try:
        check_shape(text, agent)
    except XapiError as err:
        raise XapiError(400, f"Invalid `{path}` parameter: {err.message}", path) from None
    return agent
