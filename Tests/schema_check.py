#!/usr/bin/env python3
"""Validates JSON documents against the schemas in schemas/, choosing the schema by `kind`.

Usage: schema_check.py SCHEMA_DIR FILE.json...
Prints one line per file: `FILE<TAB>valid` or `FILE<TAB>invalid<TAB>first error`.
The documents are the YAML manifests converted to JSON by Cairn's own loader, so both
sides judge the same values.
"""
import json
import os
import sys

from jsonschema import Draft202012Validator

FILES = {
    "OutcomeWeights": "outcome-weights.schema.json",
    "Template": "template.schema.json",
    "Model": "model.schema.json",
    "ServingTarget": "serving-target.schema.json",
    "ModelFamily": "model-family.schema.json",
}


def main():
    schema_dir, paths = sys.argv[1], sys.argv[2:]
    validators = {}
    for kind, name in FILES.items():
        with open(os.path.join(schema_dir, name)) as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        validators[kind] = Draft202012Validator(schema)
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        kind = doc.get("kind") if isinstance(doc, dict) else None
        validator = validators.get(kind)
        if validator is None:
            print(f"{path}\tinvalid\tno schema for kind {kind!r}")
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path)
            print(f"{path}\tinvalid\t{where}: {errors[0].message}")
        else:
            print(f"{path}\tvalid")


if __name__ == "__main__":
    main()
