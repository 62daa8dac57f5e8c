"""Write the toy table of this example (deterministic; the committed file came from it).

Columns as a real export might have them: a '.' and a '/' in names, a categorical text column, missing
values, a binary target ``clicked/7d`` and a regression target ``spend`` that is missing on some rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(rows: int = 1500) -> None:
    rng = np.random.default_rng(0)
    age = rng.integers(18, 80, rows)
    income = np.round(rng.lognormal(3.5, 0.5, rows), 1)
    city = rng.choice(["Lagos", "Lima", "Oslo", "Pune"], rows)
    visits = rng.poisson(3, rows)
    z = 0.04 * (age - 45) + 0.02 * (income - 35) + 0.4 * (city == "Oslo") + 0.3 * visits - 1
    clicked = (z + rng.normal(0, 0.7, rows) > 0).astype(int)
    spend = np.round(np.exp(0.5 * z + rng.normal(0, 0.3, rows)), 2)
    with (HERE / "customers.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["age", "income.k", "city", "visits/30d", "clicked/7d", "spend"])
        for i in range(rows):
            inc = "" if rng.random() < 0.05 else income[i]  # a few missing values
            sp = "" if rng.random() < 0.3 else spend[i]  # spend known for 70% of the customers
            w.writerow([age[i], inc, city[i], visits[i], clicked[i], sp])


if __name__ == "__main__":
    main()
