#!/usr/bin/env python3
"""An exec trainer for Cairn, standard library only: item co-occurrence ("people who engaged
with X also engaged with Y"), evaluated on a seeded per-user holdout.

Cairn runs it from a read-only snapshot of the repository with:
  CAIRN_DATASET  the interactions CSV (user_id,item_id,event,timestamp)
  CAIRN_PARAMS   JSON: params, events, outcomeWeights, evaluation {holdout, metrics, seed}, and
                 tuning {metric, goal, refit, trials: [{trial, params}]} when the template tunes
  CAIRN_OUTPUT   an empty folder for metrics.json and the model files
  CAIRN_RUN_ID, CAIRN_MODEL, CAIRN_VERSION
Exit 0 with a metrics.json holding every metric the template lists; anything else fails the run.
"""
import csv
import hashlib
import json
import math
import os
import random
import sys
import time
from collections import defaultdict


def main():
    params_doc = json.load(open(os.environ["CAIRN_PARAMS"]))
    params = params_doc.get("params", {})
    weights = params_doc["outcomeWeights"]
    events = set(params_doc["events"])
    evaluation = params_doc["evaluation"]
    out = os.environ["CAIRN_OUTPUT"]
    min_support = int(params.get("min_support", 2))

    signal = defaultdict(float)
    with open(os.environ["CAIRN_DATASET"], newline="") as f:
        for row in csv.DictReader(f):
            if row["event"] in events and weights.get(row["event"], 0) != 0:
                signal[(row["user_id"], row["item_id"])] += weights[row["event"]]
    liked = defaultdict(set)
    for (user, item), s in signal.items():
        if s > 0:
            liked[user].add(item)
    print(f"run {os.environ.get('CAIRN_RUN_ID')}: {len(liked)} users with positive signal", flush=True)

    def fit(histories):
        co = defaultdict(lambda: defaultdict(int))
        pop = defaultdict(int)
        for items in histories.values():
            for a in items:
                pop[a] += 1
                for b in items:
                    if a != b:
                        co[a][b] += 1
        return co, pop

    def recommend(co, pop, history, k, min_support):
        scores = defaultdict(float)
        for a in history:
            for b, n in co.get(a, {}).items():
                if n >= min_support and b not in history:
                    scores[b] += n
        ranked = sorted(scores, key=lambda i: (-scores[i], i))[:k]
        for item in sorted(pop, key=lambda i: (-pop[i], i)):
            if len(ranked) >= k:
                break
            if item not in history and item not in ranked:
                ranked.append(item)
        return ranked

    # Seeded per-user holdout, the same every run.
    train, held = {}, {}
    for user in sorted(liked):
        items = sorted(liked[user])
        if len(items) < 2:
            train[user] = set(items)
            continue
        seed = int(hashlib.sha256(f"{evaluation['seed']}:{user}".encode()).hexdigest()[:16], 16)
        random.Random(seed).shuffle(items)
        n = min(len(items) - 1, max(1, round(len(items) * evaluation["holdout"])))
        held[user] = set(items[:n])
        train[user] = set(items[n:])
    co, pop = fit(train)

    def evaluate(min_support):
        return {name: measure(name, min_support) for name in evaluation["metrics"]}

    def measure(name, min_support):
        kind, _, k = name.partition("@")
        k = int(k or 10)
        total = 0.0
        for user, truth in held.items():
            top = recommend(co, pop, train[user], k, min_support)
            hits = [1 if item in truth else 0 for item in top]
            if kind == "ndcg":
                dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
                ideal = sum(1 / math.log2(r + 2) for r in range(min(len(truth), k)))
                total += dcg / ideal
            elif kind in ("hit_rate", "hitrate"):
                total += 1.0 if any(hits) else 0.0
            elif kind == "recall":
                total += sum(hits) / len(truth)
            else:
                print(f"unknown metric {name}", file=sys.stderr)
                sys.exit(2)
        return round(total / max(len(held), 1), 6)

    # Tuning: Cairn chose the configurations; run each, report it in trials.json, train the best.
    tuning = params_doc.get("tuning")
    if tuning:
        trials = []
        for trial in tuning["trials"]:
            started = time.monotonic()
            tried = int(trial["params"].get("min_support", min_support))
            measured = evaluate(tried)
            trials.append({"trial": trial["trial"], "metrics": measured, "seconds": round(time.monotonic() - started, 3)})
            print(f"trial {trial['trial']}: min_support={tried} -> {json.dumps(measured, sort_keys=True)}", flush=True)
        sign = 1 if tuning.get("goal", "maximize") == "maximize" else -1
        best = max(trials, key=lambda t: (sign * t["metrics"][tuning["metric"]], -t["trial"]))
        min_support = int(next(t["params"] for t in tuning["trials"] if t["trial"] == best["trial"]).get("min_support", min_support))
        with open(os.path.join(out, "trials.json"), "w") as f:
            json.dump(trials, f, sort_keys=True)
    metrics = evaluate(min_support)
    print("metrics: " + json.dumps(metrics, sort_keys=True), flush=True)

    co, pop = fit(liked)  # the served model learns from everything
    with open(os.path.join(out, "cooccurrence.json"), "w") as f:
        json.dump({"min_support": min_support, "popularity": pop,
                   "neighbors": {a: dict(sorted(bs.items(), key=lambda kv: (-kv[1], kv[0]))[:50]) for a, bs in co.items()}},
                  f, sort_keys=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f, sort_keys=True)


if __name__ == "__main__":
    main()
