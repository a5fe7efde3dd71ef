"""The HTTP API (`ledger serve`): the ledger's application code behind FastAPI."""
