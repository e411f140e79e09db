"""What a run tells as it goes: named events with fields, for people and for log collectors.

The library emits `Event`s through a callable it is given (`execute(events=...)`, the pacer's and
the sender's `events`); it never imports `logging` nor decides how they are shown. The CLI turns
them into log records (`batcher.support.logs`): one line each, the text of today's notices or one
JSON object. `message` is the line for people; `fields` the facts for scripts (JSON-safe values).
`text=False` marks events that only machine logs show (a 429 pause, the final summary): a
person at a terminal sees the progress display and the summary instead.

Event names (SPEC "--log-format") and their fields:

- `run.started` / `run.continued`: a run starts, or continues an unfinished one: input,
  operation, target, token_env (the variable's name, never the token), report.
- `location.paused`: a 429 pauses a location for every worker: location_id, seconds.
- `location.quota_reached`: a location's daily quota (or its reserve) is reached: location_id,
  reason; its rows stay pending.
- `location.refused`: a location's own credential was refused (401/403, or the agency
  exchange): location_id, reason (naming the credential); its rows stay pending.
- `window.waiting`: outside the send window (`run.window`), the run waits until it opens:
  opens (epoch seconds); told once per opening.
- `request.failed`: a request got no per-contact answer after its retries: location_id,
  contacts, first_row, http_status, attempts, reason.
- `notice`: anything else worth a line (a state file set aside, a config warning).
- `run.stopped`: the run stopped early (exit 3): reason, exit_code; at `error` when a person
  must act (`BatcherError.needs_person`: a refused token, a quota, a breaker, the state or
  report unwritable), at `warning` for a signal (the next run resumes).
- `run.finished` / `plan.finished`: the summary, the fields of `RunResult.summary()`; with JSON
  logs, the one object on stdout.
- `warning`, `advice`, `error`: what the CLI says on stderr (`error` has exit_code; `advice`,
  the last word, is at `error` when the stop needs a person).

Once `run.started` or `run.continued` has told the run's id, every line the CLI writes names it
(`batcher.support.logs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = ["Event", "EventSink", "Level", "ignore", "notices"]

Level = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Event:
    name: str
    message: str
    fields: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    level: Level = "info"
    text: bool = True


EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default sink: a library caller that passes none hears nothing."""


def notices(notify: Callable[[str], None]) -> EventSink:
    """A sink for a caller that takes one-line notices (`notify`): the events people read."""

    def sink(event: Event) -> None:
        if event.text:
            notify(event.message)

    return sink
