"""Writes the sample dataset bundled with beam_cross: ``beam_cross/data/sample_clicks.jsonl``.

A click log shaped like real ad data: string and integer categorical columns, a multivalent column
(``interests``), skewed popularity, and a few defective rows (missing values, an absent column, a
float where an integer belongs) so that the rejected-rows output has something to show.
Deterministic: the same file on every run (a fixed seed, no clock).

    python pipelines/make_sample_data.py
"""

from __future__ import annotations

import json
import pathlib
import random

ROWS = 2500
SEED = 20240613
OUTPUT = pathlib.Path(__file__).resolve().parent.parent / "beam_cross" / "data" / "sample_clicks.jsonl"

COUNTRIES = ["us", "in", "br", "de", "fr", "gb", "jp", "mx", "id", "ng", "es", "it", "ca", "kr", "tr", "pl", "ar", "eg", "vn", "au"]
DEVICES = ["mobile", "desktop", "tablet"]
CATEGORIES = ["news", "sports", "games", "shopping", "video", "music", "travel", "finance", "food", "tech", "health", "autos"]
INTERESTS = ["sports", "travel", "cooking", "tech", "fashion", "music", "movies", "finance", "gaming", "outdoors", "pets", "books", "cars", "art", "fitness"]


def _zipf_choice(rng, items, exponent=1.1):
    weights = [1 / (rank + 1) ** exponent for rank in range(len(items))]
    return rng.choices(items, weights)[0]


def make_rows(rows=ROWS, seed=SEED):
    rng = random.Random(seed)
    publishers = [f"pub-{i:03d}" for i in range(60)]
    ads = list(range(1000, 1400))
    for click_id in range(rows):
        row = {
            "click_id": click_id,
            "country": _zipf_choice(rng, COUNTRIES),
            "device": rng.choices(DEVICES, [6, 3, 1])[0],
            "hour": rng.randrange(24),
            "ad_id": _zipf_choice(rng, ads, 0.8),
            "publisher": _zipf_choice(rng, publishers),
            "site_category": rng.choice(CATEGORIES),
            "interests": rng.sample(INTERESTS, rng.choice([0, 1, 1, 2, 2, 3, 4])),
            "clicked": int(rng.random() < 0.08),
        }
        defect = rng.random()
        if defect < 0.015:
            row["country"] = None  # a missing value
        elif defect < 0.025:
            del row["device"]  # a column absent from the row
        elif defect < 0.028:
            row["hour"] = row["hour"] + 0.5  # a float where crosses need an integer
        yield row


def main():
    with open(OUTPUT, "w", encoding="utf-8") as handle:
        for row in make_rows():
            handle.write(json.dumps(row, separators=(",", ":")) + "\n")
    print(f"Wrote {ROWS} rows to {OUTPUT} ({OUTPUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
