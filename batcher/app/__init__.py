"""What the commands do, composed from the layers below: a job and its settings, a run's stages
(`execute`, `stages/`), undo, status, shards and merging, the emulator, and what the page needs.
The CLI, the page and a Python caller call this and the public API (`batcher`), nothing below.

Nothing is imported here: `python -m batcher.app.rendering` (the report's helper process)
starts with only what it needs."""
