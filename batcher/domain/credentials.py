"""Which credential each location sends with (pure: settings and an environment in, names out).

The bulk endpoint takes a sub-account credential; one location's token does not open another
(API-NOTES.md, "Credentials across locations"). A location's credential is, in this order:
its own variable in `[api.location_tokens]`; the agency exchange (`api.agency_token_env` with
`api.company_id`: a location token obtained from POST /oauth/locationToken); `api.token_env`.
Only variables' names live here: the tokens are read where they are sent, never kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from batcher.domain.config import ApiSettings

__all__ = [
    "Credential",
    "credential_for",
    "credential_variables",
    "credentials_text",
    "shared_by_all",
]


@dataclass(frozen=True, slots=True)
class Credential:
    """Where a location's token comes from: a variable holding it, or the agency exchange with
    the agency token that variable holds."""

    variable: str
    agency: bool = False

    @property
    def label(self) -> str:
        """As plan, the confirmation and messages name it."""
        return f"agency exchange via ${self.variable}" if self.agency else f"${self.variable}"

    def is_set(self, environ: Mapping[str, str]) -> bool:
        return bool(environ.get(self.variable, "").strip())

    def fix(self, location_id: str) -> str:
        """What to do when the API refuses it for `location_id`."""
        if self.agency:
            return (
                f"check that the agency token in ${self.variable} is valid (with the oauth.write "
                f"scope) and that location {location_id} belongs to api.company_id"
            )
        return (
            f"put a valid token of location {location_id}'s sub-account (scope contacts.write) "
            f"in ${self.variable}"
        )


def credential_for(api: ApiSettings, location_id: str) -> Credential:
    """The credential `location_id` sends with (see the module docstring)."""
    own = api.location_tokens.get(location_id)
    if own is not None:
        return Credential(own)
    if api.agency_token_env:
        return Credential(api.agency_token_env, agency=True)
    return Credential(api.token_env)


def shared_by_all(api: ApiSettings, locations: Iterable[str]) -> bool:
    """Whether every location of `locations` sends with one and the same credential: then a
    refusal concerns them all, and stops the run at once."""
    return len({credential_for(api, location) for location in locations}) <= 1


def credential_variables(api: ApiSettings) -> tuple[str, ...]:
    """Every variable that may hold a token: to scrub from any text, and to hide from helpers."""
    names = [api.token_env, *api.location_tokens.values(), api.agency_token_env]
    return tuple(dict.fromkeys(name for name in names if name))


def credentials_text(api: ApiSettings) -> str:
    """Where the tokens come from, in a few words (`$BATCHER_TOKEN`; with more than one way,
    each is named and `plan` shows which location uses which)."""
    ways = [f"${name}" for name in dict.fromkeys(api.location_tokens.values())]
    if api.agency_token_env:
        ways.append(Credential(api.agency_token_env, agency=True).label)
    else:
        ways.append(f"${api.token_env}")
    if len(ways) == 1:
        return ways[0]
    return f"{', '.join(ways[:-1])} or {ways[-1]} (per location)"
