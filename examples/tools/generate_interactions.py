#!/usr/bin/env python3
"""Writes the example interactions dataset (user_id,item_id,event,timestamp).

Deterministic: a fixed seed gives the same bytes on every run, so the committed file can
be checked against this script (`python3 examples/tools/generate_interactions.py --check`).

The data has structure a recommender can learn: users belong to taste groups that prefer
groups of items, item popularity follows a power law, and conversions and renewals follow
clicks on liked items more often than on others.
"""
import argparse
import datetime
import os
import random
import sys

SEED = 20261120
USERS = 1200
ITEMS = 300
GROUPS = 8
ROWS = 24000
START = datetime.datetime(2026, 9, 1, tzinfo=datetime.timezone.utc)
DAYS = 75

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "fleet", "data", "interactions.csv")


def generate():
    rng = random.Random(SEED)
    item_group = [i % GROUPS for i in range(ITEMS)]
    # Power-law popularity: a few items get most of the traffic.
    popularity = [1.0 / (rank + 1) ** 0.8 for rank in range(ITEMS)]
    rng.shuffle(popularity)
    users = []
    for u in range(USERS):
        liked = rng.sample(range(GROUPS), 2)
        activity = rng.paretovariate(1.6)
        users.append((f"u{u:04d}", liked, activity))
    weights_by_user = [a for (_, _, a) in users]
    lines = ["user_id,item_id,event,timestamp"]
    for _ in range(ROWS):
        user_id, liked, _ = rng.choices(users, weights=weights_by_user)[0]
        if rng.random() < 0.8:
            group = rng.choice(liked)
        else:
            group = rng.randrange(GROUPS)
        candidates = [i for i in range(group, ITEMS, GROUPS)]
        item = rng.choices(candidates, weights=[popularity[i] for i in candidates])[0]
        likes = item_group[item] in liked
        r = rng.random()
        if likes:
            event = "click" if r < 0.55 else "convert" if r < 0.8 else "renewed" if r < 0.9 else "no_action" if r < 0.97 else "unsubscribed"
        else:
            event = "click" if r < 0.45 else "no_action" if r < 0.8 else "convert" if r < 0.85 else "unsubscribed" if r < 0.95 else "complaint"
        seconds = rng.randrange(DAYS * 86400)
        ts = (START + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{user_id},i{item:04d},{event},{ts}")
    return ("\n".join(lines) + "\n").encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from what this script writes")
    args = parser.parse_args()
    data = generate()
    if args.check:
        with open(args.out, "rb") as f:
            same = f.read() == data
        print("up to date" if same else f"{args.out} differs from the generator's output")
        sys.exit(0 if same else 1)
    with open(args.out, "wb") as f:
        f.write(data)
    rows = data.count(b"\n") - 1
    print(f"wrote {args.out}: {rows} rows, {len(data)} bytes")


if __name__ == "__main__":
    main()
