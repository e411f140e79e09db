"""CPU of reading and recording answers, with the garbage collector as Python leaves it and as a
run sets it (`batcher.support.collecting`), alternating in one process.

    python benchmarks/answers.py [--requests N] [-n ROUNDS]

The send stage's own work for each answer, without the network: N generated 201 answers of 500
contacts, each contact named with its own old tags (0 to 3 of 40, in any order: about 60,000
different lists, as `million.py --old-tags` gives), read by the client (`_parse_created`: orjson,
each contact's outcome, the scrub) and recorded in a fresh state file (`Outcomes.record`). Each
round does it once at the collector's default threshold and once at the one a run sets, and
prints their CPU seconds and the ratio; the answers are made once, before the first round.

Then, at a run's threshold, the reading alone with the sandbox's short token and with a token
the size of a HighLevel OAuth access token (a JWT of about 1,000 characters): every answer is
looked through for pieces of the token (`Scrubber.found_in`), and a long token has many.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import string
import tempfile
import time
from pathlib import Path

from batcher.domain.models import Action, Batch, BatchOutcome
from batcher.sending.client import BulkTagsClient
from batcher.state import schema
from batcher.state.db import connect
from batcher.state.outcomes import Outcomes
from batcher.state.work import Answered
from batcher.support.collecting import fewer_collections

TAGS = ("2026-promo", "vip")
_BASE64URL = string.ascii_letters + string.digits + "-_"
# A JWT's shape: a header, a payload and a signature, base64url, joined by dots.
LONG_TOKEN = ".".join(
    "".join(random.Random(n).choices(_BASE64URL, k=size)) for n, size in enumerate((36, 600, 342))
)
SHORT_TOKEN = "sandbox-token"


def answers(requests: int) -> list[tuple[Batch, bytes]]:
    """`requests` batches of 500 contacts and the sandbox's 201 answer to each."""
    rng = random.Random(7)
    pool = [f"tag{i:02d}" for i in range(40)]
    made = []
    for n in range(requests):
        ids = [f"{rng.getrandbits(80):020x}" for _ in range(500)]
        entries = [
            {
                "contactId": contact,
                "message": "Tags updated",
                "type": "success",
                "oldTags": rng.sample(pool, rng.randint(0, 3)),
                "tagsAdded": ["vip", "2026-promo"],
                "tagsRemoved": [],
            }
            for contact in ids
        ]
        body = {"succeded": True, "errorCount": 0, "responses": entries}
        rows = tuple(range(n * 500 + 1, n * 500 + 501))
        made.append((Batch("loc", Action.ADD, TAGS, False, 0, rows, tuple(ids)), body))
    return [(batch, json.dumps(body).encode()) for batch, body in made]


def read_and_record(made: list[tuple[Batch, bytes]], folder: Path) -> tuple[float, float]:
    """CPU seconds reading the answers and recording them, into a new state file."""
    db = connect(folder / f"{time.monotonic_ns()}.sqlite", create=True, throwaway=False)
    schema.create(db, run_id="bench", about={})
    outcomes = Outcomes(db, Answered(0), exposed_any=False)
    client = BulkTagsClient(base_url="http://127.0.0.1:9", token=SHORT_TOKEN)
    reading = recording = 0.0
    for batch, body in made:
        started = time.process_time()
        answer = client._parse_created(batch, bytearray(body), {})
        read = time.process_time()
        outcomes.record(BatchOutcome(batch, answer.outcomes, 201, 1))
        reading += read - started
        recording += time.process_time() - read
    db.close()
    return reading, recording


def read_cpu(made: list[tuple[Batch, bytes]], token: str) -> float:
    """CPU seconds reading the answers with `token` as the client's."""
    client = BulkTagsClient(base_url="http://127.0.0.1:9", token=token)
    started = time.process_time()
    for batch, body in made:
        client._parse_created(batch, bytearray(body), {})
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="answers of 500 contacts")
    parser.add_argument("-n", type=int, default=3, help="rounds")
    args = parser.parse_args()
    made = answers(args.requests)
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.n):
            default = read_and_record(made, Path(folder))
            with fewer_collections():
                fewer = read_and_record(made, Path(folder))
            ratio = sum(default) / sum(fewer)
            ratios.append(ratio)
            print(
                f"default threshold {gc.get_threshold()[0]}: read {default[0]:.2f} s, record "
                f"{default[1]:.2f} s | a run's: read {fewer[0]:.2f} s, record {fewer[1]:.2f} s "
                f"| {ratio:.2f}x"
            )
    print(
        f"{args.requests * 500:,} contacts: at Python's default threshold, "
        f"{statistics.median(ratios):.2f}x the CPU at a run's (median)"
    )
    longer = []
    with fewer_collections():
        for _ in range(args.n):
            short, long = read_cpu(made, SHORT_TOKEN), read_cpu(made, LONG_TOKEN)
            longer.append(long / short)
            print(
                f"reading with a {len(SHORT_TOKEN)}-character token {short:.2f} s, "
                f"with a {len(LONG_TOKEN)}-character one {long:.2f} s"
            )
    print(f"a JWT-sized token: {statistics.median(longer):.2f}x the CPU of reading (median)")


if __name__ == "__main__":
    main()
