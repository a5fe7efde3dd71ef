"""Simulated portfolios for tests and benchmarks."""

from __future__ import annotations

from datetime import date

from ledger.app import Ledger
from simulator.platform import Simulator
from simulator.run import SimulationReport, run_simulation

START = date(2026, 1, 1)


def simulated_ledger(
    app: Ledger, seed: int, loans: int, *, bad_lines: bool = False, days: int = 60
) -> tuple[Simulator, SimulationReport]:
    sim = Simulator(seed, loans, START, days=days, bad_lines=bad_lines)
    return sim, run_simulation(app, sim)
