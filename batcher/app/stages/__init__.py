"""The stages of a run, in order, each returning a small frozen result (`batcher.app.execute`
calls them and assembles the `RunResult` from what they return):

- `prepare`: the report paths checked, the input opened, the token read, the run identified;
- `load`: the input's rows written to the run's ledger (a new run), the state directory tidied;
- `plan`: what is still to send, counted (a file whose every row is invalid refused);
- `confirm`: what is about to be sent, shown to the caller, who may decline;
- `send`: every location's batches, paced, retried, recorded as their answers come;
- `report`: the report (and rejects) written from the ledger, its rows counted.
"""
