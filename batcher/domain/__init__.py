"""The values and rules of batcher, free of I/O policy: models, errors, planning, the report's
fields, what a lost answer leaves uncertain, events, settings, loopback. The standard library
only (an import contract says so): every other layer builds on these."""
