#!/usr/bin/env python3
"""Simulated shoppers for the learning-loop walk-through: each asks `cairn serve` for homepage
recommendations, and clicks (and sometimes buys) the first item with a probability that depends
on the version that answered. The outcomes go back through POST /v1/feedback, naming the request.

Usage: traffic.py PORT READ_TOKEN FEEDBACK_TOKEN FIRST_USER COUNT MODEL[@VERSION]=RATE ... [--seed N]
"""
import json
import random
import sys
import urllib.request


def call(port, token, method, path, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--seed")]
    seed = int(next((a.split("=")[1] for a in sys.argv[1:] if a.startswith("--seed=")), "7"))
    port, read, feedback, first, count = args[0], args[1], args[2], int(args[3]), int(args[4])
    rates = dict((k, float(v)) for k, v in (a.split("=") for a in args[5:]))
    rng = random.Random(seed)
    samples, served = [], {}
    for n in range(first, first + count):
        answer = call(port, read, "GET", f"/v1/targets/shop-homepage/recommendations?user=u{n:04d}&k=10")
        key = f"{answer['model']}@{answer['version']}"
        served[key] = served.get(key, 0) + 1
        rate = rates.get(key, rates.get(answer["model"], 0.1))
        items = [i["item"] for i in answer["items"]]
        if rng.random() < rate:
            samples.append({"requestId": answer["requestId"], "item": items[0], "outcome": "click"})
            if rng.random() < 0.3:
                samples.append({"requestId": answer["requestId"], "item": items[0], "outcome": "convert"})
    for start in range(0, len(samples), 1000):
        call(port, feedback, "POST", "/v1/feedback", samples[start:start + 1000])
    print(f"    {count} requests served by " + ", ".join(f"{k} ({v})" for k, v in sorted(served.items()))
          + f"; {len(samples)} outcomes reported")


if __name__ == "__main__":
    main()
