"""Makes the three CSVs of `synth-edge evaluate --real-train --real-holdout --synthetic` from one real
CSV, without a trained bundle: a stratified train / hold-out split, and a stand-in "synthetic"
file of N rows drawn from the train part with Gaussian noise (5 % of each column's spread),
printed with the column's decimals and kept inside its observed range. Standard library only;
seeded, so the files are the same on every run. Used by tests/field-check for the memory budget.

  noisy_split.py DATA.csv LABEL N_SYNTHETIC OUT_DIR     -> OUT_DIR/{train,holdout,synthetic}.csv
"""

import csv
import random
import sys

HOLDOUT_FRACTION = 0.2
NOISE = 0.05
SEED = 7


def decimals(text):
    return len(text) - text.index(".") - 1 if "." in text else 0


def main():
    data_path, label, n_synthetic, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(data_path, newline="") as file:
        rows = list(csv.reader(file))
    header, records = rows[0], rows[1:]
    label_idx = header.index(label)
    rng = random.Random(SEED)

    by_class = {}
    for record in records:
        by_class.setdefault(record[label_idx], []).append(record)
    train, holdout = [], []
    for members in by_class.values():
        rng.shuffle(members)
        n_holdout = max(1, round(len(members) * HOLDOUT_FRACTION))
        holdout += members[:n_holdout]
        train += members[n_holdout:]

    numeric = [col for col in range(len(header)) if col != label_idx]
    places = {col: max(decimals(record[col]) for record in records) for col in numeric}
    spread = {}
    for col in numeric:
        values = [float(record[col]) for record in train]
        mean = sum(values) / len(values)
        spread[col] = (min(values), max(values), (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5)

    synthetic = []
    for _ in range(n_synthetic):
        source = rng.choice(train)
        row = list(source)
        for col in numeric:
            low, high, std = spread[col]
            value = min(high, max(low, float(source[col]) + rng.gauss(0.0, NOISE * std)))
            row[col] = f"{value:.{places[col]}f}"
        synthetic.append(row)

    for name, part in (("train", train), ("holdout", holdout), ("synthetic", synthetic)):
        with open(f"{out_dir}/{name}.csv", "w", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(part)
    print(f"{data_path}: {len(train)} train, {len(holdout)} hold-out, {len(synthetic)} noisy synthetic rows in {out_dir}")


if __name__ == "__main__":
    main()
