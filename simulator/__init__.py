"""A seeded, day-by-day lending platform: realistic, messy traffic for the ledger's real append path.

``platform.Simulator`` plans borrowers, decisions, funding, repayments and the mess (late and
double callbacks, reversals, planted bad lines); ``run.run_simulation`` feeds it through
``ledger append`` and the end of day. Test data and the demo only: nothing in the ledger imports it.
"""
