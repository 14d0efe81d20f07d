"""Compares what the aarch64 build of synth-edge (run under qemu) wrote with what the x86-64 build
wrote for the same command and seed. Used by tests/field-check; standard library only.

  field_compare.py encoded NATIVE.json EMULATED.json   samples from `generate --encoded-out`
  field_compare.py csv NATIVE.csv EMULATED.csv          the decoded samples a user gets
  field_compare.py metrics NATIVE.json EMULATED.json   figures from `evaluate --json`
  field_compare.py hub HUB.db EMULATED.json...          a hub logbook after `hub import`

Each prints one line saying what matched and how; a mismatch exits 1 with the first offenders.

Tolerances, and why:
- encoded samples: |native - emulated| <= 1e-5 (the issue's bound). The two builds run the same
  graph with different matrix and activation kernels (AVX2/FMA on x86-64, NEON on aarch64): the
  f32 sums are taken in another order, and results differ in the last bits. Labels are drawn in
  Rust from the seed: equal exactly.
- CSV: a cell is equal as text, or both are numbers that differ by at most one unit in the last
  printed decimal (a value within 1e-5 that lies next to a rounding boundary prints one digit
  apart). Categories and labels are equal as text.
- metrics: equal exactly, every count, value and interval end, bar samples_per_second and
  ms_per_sample, which measure the emulator rather than the code. No tolerance is needed, and
  none is granted: evaluate reads the samples as decoded and printed (the same text on both
  builds, see above), and from the same input the k-NN core, the classifiers and the bootstrap
  give the same bits on both architectures. Should a printed digit ever flip (the csv line
  says so), the figures that depend on that cell would differ slightly: the check then fails
  and names them, for a person to look at, rather than hiding it under a tolerance.
"""

import csv
import json
import sqlite3
import sys

ENCODED_TOLERANCE = 1e-5
# Efficiency figures are timings and memory of the machine that ran: not compared.
EXCLUDED_AXIS = "efficiency"


def fail(what, problems):
    print(f"MISMATCH {what}: {len(problems)} problem(s)")
    for line in problems[:10]:
        print(f"  {line}")
    sys.exit(1)


def compare_encoded(native_path, emulated_path):
    native = json.load(open(native_path))
    emulated = json.load(open(emulated_path))
    problems = []
    if native["width"] != emulated["width"] or len(native["rows"]) != len(emulated["rows"]):
        fail(emulated_path, [f"shape {len(native['rows'])}x{native['width']} vs {len(emulated['rows'])}x{emulated['width']}"])
    if native["labels"] != emulated["labels"]:
        problems.append("labels differ")
    largest, identical, total = 0.0, 0, 0
    for row_idx, (row_a, row_b) in enumerate(zip(native["rows"], emulated["rows"])):
        for col_idx, (a, b) in enumerate(zip(row_a, row_b)):
            total += 1
            identical += a == b
            largest = max(largest, abs(a - b))
            if abs(a - b) > ENCODED_TOLERANCE:
                problems.append(f"row {row_idx} value {col_idx}: {a} vs {b}")
    if problems:
        fail(emulated_path, problems)
    print(f"ok {emulated_path}: {len(native['rows'])} samples, labels equal, {identical}/{total} values bit-identical, "
          f"largest difference {largest:.3g} (tolerance {ENCODED_TOLERANCE:g})")


def last_digit_unit(text):
    return 10.0 ** -(len(text) - text.index(".") - 1) if "." in text else 1.0


def compare_csv(native_path, emulated_path):
    native = list(csv.reader(open(native_path, newline="")))
    emulated = list(csv.reader(open(emulated_path, newline="")))
    if len(native) != len(emulated) or native[0] != emulated[0]:
        fail(emulated_path, ["header or row count differs"])
    problems, flipped, cells = [], 0, 0
    for row_idx, (row_a, row_b) in enumerate(zip(native[1:], emulated[1:]), start=1):
        for col_idx, (a, b) in enumerate(zip(row_a, row_b)):
            cells += 1
            if a == b:
                continue
            try:
                close = abs(float(a) - float(b)) <= max(last_digit_unit(a), last_digit_unit(b)) * (1 + 1e-9)
            except ValueError:
                close = False
            if close:
                flipped += 1
            else:
                problems.append(f"row {row_idx} column {col_idx}: {a} vs {b}")
    if problems:
        fail(emulated_path, problems)
    print(f"ok {emulated_path}: {cells} cells, {cells - flipped} equal as text, {flipped} one unit apart in the last printed digit")


def metric_key(metric):
    return (metric["axis"], metric["name"])


def compare_metrics(native_path, emulated_path):
    native = json.load(open(native_path))
    emulated = json.load(open(emulated_path))
    problems = []
    if native["data"] != emulated["data"]:
        problems.append(f"data summary {native['data']} vs {emulated['data']}")
    if [metric_key(m) for m in native["metrics"]] != [metric_key(m) for m in emulated["metrics"]]:
        problems.append("the lists of figures differ")
    if native["skipped"] != emulated["skipped"]:
        problems.append("the skipped figures differ")
    compared = 0
    for a, b in zip(native["metrics"], emulated["metrics"]):
        if a["axis"] == EXCLUDED_AXIS:
            continue
        compared += 1
        if a != b:
            problems.append(f"{a['axis']}/{a['name']}: " + ", ".join(f"{field} {a[field]} vs {b[field]}" for field in ("value", "ci_low", "ci_high", "n")))
    if problems:
        fail(emulated_path, problems)
    print(f"ok {emulated_path}: {compared} figures equal bit for bit (value, interval, n); {len(native['metrics']) - compared} speed figure(s) not compared")


def compare_hub(hub_path, emulated_paths):
    """Every emulated evaluate run arrived in the hub with its figures unchanged, bit for bit."""
    connection = sqlite3.connect(hub_path)
    problems = []
    runs = [row[0] for row in connection.execute("SELECT id FROM runs WHERE kind = 'evaluate' AND status = 'done'")]
    for path in emulated_paths:
        report = json.load(open(path))
        wanted = {metric_key(m): (m["value"], m["ci_low"], m["ci_high"], m["n"]) for m in report["metrics"]}
        matching = [
            run_id
            for run_id in runs
            if wanted == {
                (axis, name): (value, low, high, n)
                for axis, name, value, low, high, n in connection.execute(
                    "SELECT axis, name, value, ci_low, ci_high, n FROM metrics WHERE run_id = ?", (run_id,))
            }
        ]
        if len(matching) != 1:
            problems.append(f"{path}: {len(matching)} hub run(s) hold exactly its {len(wanted)} figures (expected 1)")
    if problems:
        fail(hub_path, problems)
    devices = connection.execute("SELECT count(*) FROM devices").fetchone()[0]
    print(f"ok {hub_path}: {devices} device(s); each of {len(emulated_paths)} emulated evaluate run(s) arrived with its figures bit for bit")


def main():
    command, *paths = sys.argv[1:]
    if command == "encoded":
        compare_encoded(*paths)
    elif command == "csv":
        compare_csv(*paths)
    elif command == "metrics":
        compare_metrics(*paths)
    elif command == "hub":
        compare_hub(paths[0], paths[1:])
    else:
        sys.exit(f"unknown comparison `{command}`: expected encoded, csv, metrics or hub")


if __name__ == "__main__":
    main()
