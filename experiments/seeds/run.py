#!/usr/bin/env python3
"""Runs the seed reproductions: every sweep file of each paper's folder (experiments/seeds/<paper>/
sweep*.toml) with `bitsim sweep`, then the paper's inference step on every trained point where it
has one (Jacob et al. 2018: integer-only inference; FINN: popcount inference), and writes each
sweep's summary.md (per configuration: seeds, final test accuracy mean and spread, each seed's).

Without --set, what the sweeps conclude is kept in the paper's folder, results/<sweep>/:
results.csv, configs.csv, curves.csv, curves.png, summary.md and the inference table (the run
directories, checkpoints included, stay under --out). With --set (a slice, as the tests run it)
nothing is written into the source tree.

Usage: experiments/seeds/run.py [--bitsim PATH] [--out DIR] [--jobs N] [--set KEY=VALUE ...] [PAPER ...]
"""
import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys

def fail(message, status=2):
    """One line on stderr naming what is wrong; exit status 2 for bad input, 1 for a failed run."""
    print(f"run.py: {message}", file=sys.stderr)
    sys.exit(status)


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def papers():
    return sorted(d for d in os.listdir(HERE) if os.path.isdir(os.path.join(HERE, d)) and sweeps_of(d))


def sweeps_of(paper):
    d = os.path.join(HERE, paper)
    return sorted(f for f in os.listdir(d) if f.startswith("sweep") and f.endswith(".toml"))


def run_sweep(args, paper, sweep_file, out):
    cmd = [args.bitsim, "sweep", os.path.join(HERE, paper, sweep_file), "--out", out, "--jobs", str(args.jobs), "--threads", "1"]
    for kv in args.set:
        cmd += ["--set", kv]
    if os.path.exists(os.path.join(out, "sweep.json")):
        cmd.append("--resume")
    print(f"== {paper}/{sweep_file}", flush=True)
    status = subprocess.run(cmd).returncode
    if status not in (0, 1):  # 1: some point failed; its row says why
        fail(f"{paper}/{sweep_file}: bitsim sweep exited with {status}", 1)


def points(out):
    """The sweep's points with their results, labels, seeds and overrides (results.json)."""
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    return r["sweep"]["experiment"], r["points"]


def infer(args, experiment, point, out, flags):
    cmd = [args.bitsim, "infer", experiment, "--checkpoint", os.path.join(out, "points", point["id"], "checkpoint.bin"),
           "--threads", "1", "--json"] + flags
    for o in point["overrides"]:
        cmd += ["--set", o]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        fail(f"infer of point {point['id']} in {out} failed: {' '.join(p.stderr.split())}", 1)
    return json.loads(p.stdout)


def integer_only(args, experiment, point, out):
    """Jacob et al. 2018: the fp32 network quantized after training (min/max ranges), the
    quantization-aware one with the ranges it tracked."""
    qat = "symmetric" in json.dumps(point["overrides"])
    r = infer(args, experiment, point, out, ["--integer-only", "--calibration", "ema" if qat else "minmax"])
    i = r["integer_only"]
    return {"run": "QAT, integer-only (tracked ranges)" if qat else "fp32, post-training int8 (min/max ranges)",
            "reference_accuracy": i["reference"]["accuracy"], "integer_accuracy": r["accuracy"]["test"],
            "same_prediction": i["agreement_with_reference"],
            "inference_energy_j": r["cost"]["total"]["energy_pj"]["total"] * 1e-12}


def popcount(args, experiment, point, out):
    """FINN: XNOR-popcounts and per-neuron thresholds against the float-BatchNorm network."""
    r = infer(args, experiment, point, out, ["--popcount"])
    p = r["popcount"]
    return {"run": "popcount thresholds", "reference_accuracy": p["float_batchnorm"]["accuracy"], "integer_accuracy": r["accuracy"]["test"],
            "same_prediction": p["same_prediction"] / p["examples"], "inference_energy_j": r["cost"]["total"]["energy_pj"]["total"] * 1e-12}


POST = {"jacob2018": integer_only, "finn": popcount}


def write_csv(path, rows):
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    os.replace(path + ".tmp", path)


def post_step(args, paper, out):
    step = POST.get(paper)
    if not step:
        return None
    experiment, pts = points(out)
    rows = []
    for p in pts:
        if p["status"] != "ok":
            continue
        row = {"id": p["id"], "label": p["label"], "seed": p.get("seed", "")}
        row.update(step(args, experiment, p, out))
        rows.append(row)
    if rows:
        write_csv(os.path.join(out, "inference.csv"), rows)
    return rows


def cell(text):
    """Text for a Markdown table cell: a '|' would end the cell."""
    return str(text).replace("|", "\\|")


def pct(v):
    return f"{100 * v:.2f}"


def summary(out, post_rows):
    """summary.md: per configuration (in sweep order) the final test accuracy over its seeds."""
    with open(os.path.join(out, "results.json")) as f:
        pts = json.load(f)["points"]
    configs = {}
    for p in pts:
        c = configs.setdefault(p["label"], {"acc": [], "failed": 0, "energy": [], "wall": []})
        if p["status"] == "ok":
            c["acc"].append(p["metrics"]["accuracy.test"])
            c["energy"].append(p["metrics"]["cost.energy_j"])
            c["wall"].append(p["wall_seconds"])
        else:
            c["failed"] += 1
    lines = ["| configuration | seeds | test accuracy (%), mean | sd | each seed | training energy (J) |",
             "| --- | ---: | ---: | ---: | --- | ---: |"]
    for label, c in configs.items():
        a = c["acc"]
        mean = pct(statistics.mean(a)) if a else "-"
        sd = pct(statistics.stdev(a)) if len(a) > 1 else "-"
        each = ", ".join(pct(v) for v in a) + (f" ({c['failed']} not finished)" if c["failed"] else "")
        energy = f"{statistics.mean(c['energy']):.4g}" if c["energy"] else "-"
        lines.append(f"| {cell(label)} | {len(a)} | {mean} | {sd} | {each} | {energy} |")
    if post_rows:
        lines += ["", "| configuration | run | reference accuracy (%) | its integer accuracy (%) | same prediction | inference energy (J) |",
                  "| --- | --- | --- | --- | --- | ---: |"]
        groups = {}
        for r in post_rows:
            groups.setdefault((r["label"], r["run"]), []).append(r)
        for (label, run), rs in groups.items():
            def ms(k, scale=100):
                v = [r[k] * scale for r in rs]
                return f"{statistics.mean(v):.2f}" + (f" +- {statistics.stdev(v):.2f}" if len(v) > 1 else "")
            lines.append(f"| {cell(label)} | {cell(run)} | {ms('reference_accuracy')} | {ms('integer_accuracy')} | {ms('same_prediction')}% | "
                         f"{statistics.mean(r['inference_energy_j'] for r in rs):.4g} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    return text


KEEP = ["results.csv", "configs.csv", "curves.csv", "curves.png", "inference.csv", "summary.md"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bitsim", default=os.path.join(ROOT, "build", "app", "bitsim"))
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "seeds"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("paper", nargs="*")
    args = ap.parse_args()
    if not os.access(args.bitsim, os.X_OK):
        fail(f"no bitsim at '{args.bitsim}' (build it, or pass --bitsim)")
    known = papers()
    for p in args.paper:
        if p not in known:
            fail(f"unknown paper '{p}': expected one of {', '.join(known)}")
    for paper in args.paper or known:
        for sweep_file in sweeps_of(paper):
            name = sweep_file[: -len(".toml")]
            out = os.path.join(args.out, paper, name)
            run_sweep(args, paper, sweep_file, out)
            print(summary(out, post_step(args, paper, out)))
            if args.set:
                continue
            keep = os.path.join(HERE, paper, "results", name)
            os.makedirs(keep, exist_ok=True)
            for f in KEEP:
                if os.path.exists(os.path.join(out, f)):
                    shutil.copyfile(os.path.join(out, f), os.path.join(keep, f))


if __name__ == "__main__":
    main()
