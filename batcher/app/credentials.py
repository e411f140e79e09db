"""The credentials of a run: each location's, named for plan and the confirmation, checked
before anything is sent, and read from the environment for the send stage.

Which credential a location uses is `batcher.domain.credentials`' rule; this module applies it
to the locations of a file. A location whose credential is not set stops the run with exit 2
before any request (`require`). Tokens are read here and handed to the send stage only: never
kept in the run's state, never in a message (the variables' names are).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from batcher.domain.config import Settings
from batcher.domain.credentials import Credential, credential_for, shared_by_all
from batcher.domain.errors import ConfigError
from batcher.sending.tokens import Agency, Tokens

__all__ = [
    "LocationCredential",
    "RunCredentials",
    "credentials_of",
    "read_credentials",
    "require",
    "uses_one_credential",
]

# How many unset locations the exit-2 line names before "and N more".
_NAMED = 5


@dataclass(frozen=True)
class LocationCredential:
    """A location, the credential it sends with, and whether that credential is set."""

    location_id: str
    credential: Credential
    set: bool

    @property
    def text(self) -> str:
        """`$BATCHER_TOKEN_B (set)`, `agency exchange via $AGENCY (not set)`."""
        return f"{self.credential.label} ({'set' if self.set else 'NOT SET'})"


def credentials_of(
    settings: Settings, locations: Iterable[str], environ: Mapping[str, str] | None = None
) -> tuple[LocationCredential, ...]:
    """Each location's credential, in the order given."""
    env = _environ(settings, environ)
    found = []
    for location in locations:
        credential = credential_for(settings.api, location)
        set_ = credential.is_set(env) and (not credential.agency or bool(settings.api.company_id))
        found.append(LocationCredential(location, credential, set_))
    return tuple(found)


def uses_one_credential(settings: Settings) -> bool:
    """Whether the config gives every location the same credential (`api.token_env`): then it
    is checked before the input is read, as it always was."""
    return not settings.api.location_tokens and not settings.api.agency_token_env


def require(credentials: Iterable[LocationCredential]) -> None:
    """ConfigError (exit 2, nothing sent) naming the locations whose credential is not set."""
    missing = [c for c in credentials if not c.set]
    if not missing:
        return
    named = "; ".join(
        f"location {c.location_id}: {c.credential.label} is not set" for c in missing[:_NAMED]
    )
    more = f"; and {len(missing) - _NAMED} more" if len(missing) > _NAMED else ""
    raise ConfigError(
        f"no credential for {len(missing)} location{'s' if len(missing) != 1 else ''} of the "
        f"file ({named}{more}); export each variable named (a sub-account's token, or the "
        "agency's token for the exchange), or map the location to another variable in "
        "[api.location_tokens]; nothing was sent"
    )


@dataclass(frozen=True)
class RunCredentials:
    """What the send stage sends with: the default token, each location's tokens (given or
    obtained), every token to scrub, each location's Credential, and whether one credential
    serves every location (then a refusal stops the run at once)."""

    default: str = field(repr=False)
    tokens: Tokens = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    credential: Callable[[str], Credential]
    shared: bool


def read_credentials(
    settings: Settings,
    locations: Iterable[str],
    clock: Callable[[], float],
    environ: Mapping[str, str] | None = None,
) -> RunCredentials:
    """The tokens of `locations`, read from the environment (`require` has checked them)."""
    env = _environ(settings, environ)
    api = settings.api
    places = tuple(locations)
    given: dict[str, str] = {}
    exchanged: set[str] = set()
    for location in places:
        credential = credential_for(api, location)
        if credential.agency:
            exchanged.add(location)
        else:
            given[location] = env.get(credential.variable, "").strip()
    agency = None
    if exchanged:
        agency = Agency(env.get(api.agency_token_env, "").strip(), api.company_id)
    default = next(iter(given.values()), "") or (agency.token if agency is not None else "")
    secrets = tuple(
        dict.fromkeys(t for t in (*given.values(), agency.token if agency else "") if t)
    )
    return RunCredentials(
        default=default,
        tokens=Tokens(
            default, given=given, agency=agency, exchanged=frozenset(exchanged), clock=clock
        ),
        secrets=secrets,
        credential=lambda location: credential_for(api, location),
        shared=shared_by_all(api, places),
    )


def _environ(settings: Settings, environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """Where the tokens are read: `environ` if given, else the settings' own environment (a
    Python caller's tokens: `batcher.app.api`), else the process's."""
    if environ is not None:
        return environ
    return os.environ if settings.environ is None else settings.environ
