"""Simulated portfolios for tests and benchmarks."""

from __future__ import annotations

from datetime import date

from ledger.app import Ledger
from simulator.platform import Simulator
from simulator.run import SimulationReport, run_simulation

START = date(2026, 1, 1)


def simulated_ledger(
    app: Ledger, seed: int, loans: int, *, bad_lines: bool = False, days: int = 60, settle: bool = False
) -> tuple[Simulator, SimulationReport]:
    """``settle``: also the daily settlement with every bank (tests/test_settlement.py runs it; the
    other tests leave it out, where it would double the end of day's time and change no figure they check)."""
    sim = Simulator(seed, loans, START, days=days, bad_lines=bad_lines)
    return sim, run_simulation(app, sim, settle=settle)
