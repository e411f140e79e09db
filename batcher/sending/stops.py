"""How a stop of sending is explained: the run's error when some locations stopped (their
daily quota, their credential refused, the send window), and their pending rows' message.

Apart from the sender, which sends: the send stage's result (`batcher.app.stages.sent`) explains
a plan's stop too, and a plan never imports the HTTP client.
"""

from __future__ import annotations

from collections.abc import Mapping

from batcher.domain.errors import RESUME, CredentialsRefusedError, QuotaReachedError, WindowEndError

__all__ = [
    "credentials_refused",
    "quota_message",
    "quota_reached",
    "window_message",
    "window_reached",
]


def quota_reached(stopped: Mapping[str, str]) -> QuotaReachedError:
    """The run's stop when some locations' daily quota is reached (the others finished)."""
    names = ", ".join(f"{location} ({reason})" for location, reason in sorted(stopped.items()))
    count = len(stopped)
    return QuotaReachedError(
        f"the daily request quota of {count} location{'s' if count != 1 else ''} is reached: "
        f"{names}",
        advice="their rows stay pending: run the same command again when it resets",
    )


def credentials_refused(refused: Mapping[str, str]) -> CredentialsRefusedError:
    """The run's stop when some locations' credentials (location -> the credential's name)
    were refused (the others finished)."""
    count = len(refused)
    names = ", ".join(f"{location}: {label}" for location, label in sorted(refused.items()))
    return CredentialsRefusedError(
        f"the API refused the credential of {count} location{'s' if count != 1 else ''} "
        f"({names}); the other locations finished",
        advice="each report line says which credential to fix; then " + RESUME,
    )


def window_reached(stopped: Mapping[str, str]) -> WindowEndError:
    """The run's stop when the send window stops some locations (`--until-window-end`)."""
    reasons = sorted(set(stopped.values()))
    count = len(stopped)
    return WindowEndError(
        f"stopped by --until-window-end ({count} location{'s' if count != 1 else ''}): "
        + "; ".join(reasons),
        advice="their rows stay pending: run the same command again then",
    )


def window_message(reason: str) -> str:
    """The message of a row left pending by `--until-window-end`."""
    return f"not sent: {reason}; run the same command again then"


def quota_message(reason: str) -> str:
    """The message of a row left pending because its location's daily quota is reached."""
    return (
        f"not sent: the location's daily request quota is reached ({reason}); run the same "
        "command again when it resets"
    )
