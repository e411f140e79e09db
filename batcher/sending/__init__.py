"""Getting batches to the API: one request (`client`, aiohttp here only), pacing, retrying
(tenacity here only), a pool of workers, the lanes that say which batch goes next (over a work
source, not the ledger), one batch's way through them (`sender`), and the breakers."""
