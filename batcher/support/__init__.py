"""What every layer may lean on: files batcher trusts or makes its own, secrets scrubbed, text
made safe for a terminal, the cores at hand, the graceful stop, log lines, crash files."""
