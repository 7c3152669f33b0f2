#!/usr/bin/env python3
"""Writes the JSON Schemas (2020-12) for Cairn's manifest kinds, one file per kind.

The shared parts (metadata, names, durations, routes) are defined once here. Run it after
changing a rule; `--check` exits 1 if a committed schema is out of date (CI runs it).
What a schema cannot express (route weights summing to 100, a version both approved and
rejected, references between documents) is checked by `cairn validate` alone.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "https://cairn.dev/schemas/"

NAME = {
    "type": "string",
    "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    "maxLength": 63,
}
TEXT = {"type": "string", "pattern": "\\S"}
EVENT = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 63}
METRIC = {"type": "string", "pattern": "^[a-z][a-z0-9_]*(@[1-9][0-9]{0,3})?$"}
BUILTIN_METRIC = {"type": "string", "pattern": "^((ndcg|recall|precision)@[1-9][0-9]{0,3}|coverage(@[1-9][0-9]{0,3})?)$"}
DURATION = {
    "type": "string",
    "pattern": "^(?=.*[1-9])([0-9]+[smhd])+$",
    "description": "A number and a unit, repeated: 90s, 30m, 24h, 7d, 1h30m.",
}


def described(schema, text):
    return {**schema, "description": text}


def document(kind, title, description, spec):
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": BASE + file_name(kind),
        "title": title,
        "description": description,
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "cairn/v1", "description": "Always cairn/v1."},
            "kind": {"const": kind},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": described(NAME, "Unique per kind: lower-case letters, digits and '-', at most 63 characters."),
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Free-form string labels."},
                    "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Free-form string notes."},
                },
            },
            "spec": spec,
        },
    }


def file_name(kind):
    return {
        "OutcomeWeights": "outcome-weights.schema.json",
        "Template": "template.schema.json",
        "Model": "model.schema.json",
        "ServingTarget": "serving-target.schema.json",
        "ModelFamily": "model-family.schema.json",
    }[kind]


outcome_weights = document(
    "OutcomeWeights", "Cairn OutcomeWeights",
    "How outcome and event types map to a signed training signal.",
    {
        "type": "object",
        "required": ["weights"],
        "additionalProperties": False,
        "properties": {
            "weights": {
                "type": "object",
                "description": "Event type to weight in [-10, 10]; at least one weight above 0.",
                "minProperties": 1,
                "propertyNames": EVENT,
                "additionalProperties": {"type": "number", "minimum": -10, "maximum": 10},
                # "Not every weight is 0 or below" = at least one is positive.
                "not": {"additionalProperties": {"maximum": 0}},
            }
        },
    },
)

builtin_trainer = {
    "type": "object",
    "required": ["kind", "algorithm"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "builtin"},
        "algorithm": {"enum": ["popularity", "item-knn"], "description": "popularity ranks by weighted count; item-knn by item-item cosine similarity."},
        "params": {"type": "object"},
    },
    "allOf": [
        {
            "if": {"properties": {"algorithm": {"const": "popularity"}}},
            "then": {"properties": {"params": {"type": "object", "maxProperties": 0}}},
        },
        {
            "if": {"properties": {"algorithm": {"const": "item-knn"}}},
            "then": {
                "properties": {
                    "params": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "neighbors": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Neighbours kept per item (default 50)."},
                            "shrinkage": {"type": "number", "minimum": 0, "maximum": 10000, "description": "Similarity shrinkage toward 0 for rare co-occurrence."},
                        },
                    }
                }
            },
        },
    ],
}

def trainer_env(reserved):
    """Extra environment variables of an exec or Slurm trainer; names with these prefixes are refused."""
    return {
        "type": "object",
        "propertyNames": {"type": "string", "pattern": "^(?!" + "|".join(reserved) + ")[A-Za-z_][A-Za-z0-9_]*$"},
        "additionalProperties": {"type": "string"},
        "description": "Extra environment variables; " + ", ".join(reserved) + " names are reserved.",
    }


exec_trainer = {
    "type": "object",
    "required": ["kind", "command"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "exec"},
        "command": {"type": "array", "minItems": 1, "items": TEXT, "description": "Program and arguments, run from the manifest folder of a read-only snapshot of the repository at the run's commit."},
        "timeout": DURATION,
        "env": trainer_env(["CAIRN_"]),
        "params": {"type": "object", "description": "Passed to the trainer in the CAIRN_PARAMS file."},
    },
}

SLURM_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.,-]+$"}

slurm_trainer = {
    "type": "object",
    "required": ["kind"],
    "additionalProperties": False,
    "properties": {
        "kind": {"const": "slurm"},
        "command": {"type": "array", "minItems": 1, "items": TEXT, "description": "Program and arguments the batch job runs, from the manifest folder of a read-only snapshot of the repository at the run's commit."},
        "script": {"type": "string", "pattern": "^(?!/)(?!.*(^|/)\\.\\.(/|$)).+$", "description": "Or a shell script in the repository (relative to the manifest folder), run with bash."},
        "partition": described(SLURM_NAME, "sbatch --partition."),
        "account": described(SLURM_NAME, "sbatch --account."),
        "timeout": described(DURATION, "The job's time limit (sbatch --time, whole minutes rounded up; default 1h)."),
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "gpus": {"type": "integer", "minimum": 0, "maximum": 1024, "description": "sbatch --gpus."},
                "cpus": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "sbatch --cpus-per-task."},
                "memory": {"type": "string", "pattern": "^[1-9][0-9]{0,11}[KMGT]?$", "description": "sbatch --mem: 16G, 512M."},
            },
        },
        "options": {
            "type": "object",
            "additionalProperties": False,
            "description": "Further sbatch options from an allow-list, without the leading --.",
            "properties": {
                **{k: {"type": ["string", "integer"]} for k in ["qos", "constraint", "reservation", "nodelist", "exclude", "gres", "gpus-per-node", "mem-per-gpu", "licenses", "comment", "hint"]},
                **{k: {"type": "integer"} for k in ["cpus-per-gpu", "nice", "nodes", "ntasks", "ntasks-per-node"]},
                "exclusive": {"type": "boolean"},
            },
        },
        "env": trainer_env(["CAIRN_", "SLURM_", "SBATCH_"]),
        "params": {"type": "object", "description": "Passed to the job in the CAIRN_PARAMS file."},
    },
    "oneOf": [{"required": ["command"]}, {"required": ["script"]}],
}

template = document(
    "Template", "Cairn Template",
    "A repeatable training recipe: which signals, which data, which trainer, how it is evaluated.",
    {
        "type": "object",
        "required": ["events", "outcomeWeights", "dataset", "trainer", "evaluation"],
        "additionalProperties": False,
        "properties": {
            "displayName": described(TEXT, "Used in version system names."),
            "events": {"type": "array", "minItems": 1, "uniqueItems": True, "items": EVENT, "description": "Event types this template learns from."},
            "outcomeWeights": described(NAME, "Name of an OutcomeWeights document."),
            "dataset": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "path": {"type": "string", "pattern": "^[^/]", "description": "A file in the repository, relative to the manifest root."},
                    "uri": {"type": "string", "pattern": "^file:///.", "description": "A file outside git (file:///…), fingerprinted by content at train time."},
                },
                "oneOf": [{"required": ["path"]}, {"required": ["uri"]}],
            },
            "trainer": {
                "type": "object",
                "required": ["kind"],
                "properties": {"kind": {"enum": ["builtin", "exec", "slurm"]}},
                "allOf": [
                    {"if": {"properties": {"kind": {"const": "builtin"}}}, "then": builtin_trainer},
                    {"if": {"properties": {"kind": {"const": "exec"}}}, "then": exec_trainer},
                    {"if": {"properties": {"kind": {"const": "slurm"}}}, "then": slurm_trainer},
                ],
            },
            "tuning": {
                "type": "object",
                "required": ["metric", "trials", "space"],
                "additionalProperties": False,
                "description": "A search over the trainer's parameters on the holdout split before the version is trained (docs/manifests.md).",
                "properties": {
                    "metric": described(METRIC, "The evaluation metric to optimise (one of evaluation.metrics)."),
                    "goal": {"enum": ["maximize", "minimize"], "default": "maximize"},
                    "trials": {"type": "integer", "minimum": 1, "maximum": 100, "description": "The budget: configurations tried."},
                    "strategy": {"enum": ["grid", "random"], "default": "grid",
                                 "description": "grid: combinations in order; random: drawn with the evaluation seed."},
                    "refit": {"type": "boolean", "default": True,
                              "description": "true: the version is trained on all data with the best configuration; false: it is the best trial's model."},
                    "space": {"type": "object", "minProperties": 1,
                              "additionalProperties": {"type": "array", "minItems": 1, "uniqueItems": True},
                              "description": "Parameter → the values to try."},
                },
            },
            "items": {
                "type": "object",
                "required": ["path"],
                "additionalProperties": False,
                "description": "Item metadata for reviewing recommendations (not part of the training fingerprint).",
                "properties": {
                    "path": {"type": "string", "pattern": "^[^/]", "description": "A CSV (item_id,title,category) in the repository, relative to the manifest root."},
                },
            },
            "evaluation": {
                "type": "object",
                "required": ["metrics"],
                "additionalProperties": False,
                "properties": {
                    "holdout": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "description": "Fraction held out per user (default 0.2)."},
                    "metrics": {"type": "array", "minItems": 1, "uniqueItems": True, "items": METRIC},
                    "seed": {"type": "integer", "minimum": 0, "description": "Seed of the holdout split (default 42)."},
                },
            },
        },
        "if": {"properties": {"trainer": {"properties": {"kind": {"const": "builtin"}}, "required": ["kind"]}}, "required": ["trainer"]},
        "then": {"properties": {"evaluation": {"properties": {"metrics": {"items": BUILTIN_METRIC}}}}},
    },
)

gate = {
    "type": "object",
    "required": ["metric"],
    "additionalProperties": False,
    "properties": {
        "metric": TEXT,
        "min": {"type": "number"},
        "max": {"type": "number"},
        "maxRegression": {"type": "number", "minimum": 0, "description": "Largest drop allowed against the best approved version so far."},
    },
    "anyOf": [{"required": ["min"]}, {"required": ["max"]}, {"required": ["maxRegression"]}],
}

version_list = {"type": "array", "uniqueItems": True, "items": {"type": "integer", "minimum": 1}}


def shadow_evidence(with_step):
    props = {
        "minRequests": {"type": "integer", "minimum": 1, "description": "Traced requests the version answered as a shadow."},
        "minOverlap": {"type": "number", "minimum": 0, "maximum": 1, "description": "Mean overlap@k with what was served."},
        "minRankCorrelation": {"type": "number", "minimum": -1, "maximum": 1, "description": "Mean Spearman rank correlation with what was served."},
        "maxLatencyP95Ms": {"type": "number", "minimum": 0.001, "maximum": 600000, "description": "The shadow's own p95 latency, in milliseconds."},
    }
    if with_step:
        props["requiredFor"] = {"enum": ["approval", "promotion"], "default": "approval"}
    return {"type": "object", "required": ["minRequests"], "additionalProperties": False, "properties": props,
            "description": "Online evidence the version must show as a shadow first."}

model = document(
    "Model", "Cairn Model",
    "A registered model: a long-lived track whose trained versions are produced from a template.",
    {
        "type": "object",
        "required": ["template"],
        "additionalProperties": False,
        "properties": {
            "template": described(NAME, "Name of the Template versions are trained from."),
            "lifecycle": {"enum": ["draft", "active", "archived", "deleted"], "default": "draft",
                          "description": "deleted removes the model, its versions and runs for good (never while served); the audit history keeps them."},
            "tenant": described(NAME, "Whose model it is, for the operator's per-tenant quota (--model-quota); none counts as 'default'."),
            "discover": {"type": "boolean", "default": False,
                         "description": "A draft asks for discovery: traits measured from its template's data at the commit, recorded before it trains."},
            "family": described(NAME, "Registry family; at most one champion per family."),
            "stage": {"enum": ["none", "shadow", "challenger", "champion"], "default": "none"},
            "label": TEXT,
            "description": {"type": "string"},
            "traits": {"type": "array", "uniqueItems": True, "items": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "maxLength": 63},
                       "description": "May change only until the model is first ready."},
            "learning": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"mode": {"enum": ["none", "scheduled"], "default": "none"}, "every": DURATION},
                "if": {"properties": {"mode": {"const": "scheduled"}}, "required": ["mode"]},
                "then": {"required": ["every"]},
            },
            "retrainToken": described(TEXT, "Any string; changing it forces one new training run."),
            "approval": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"mode": {"enum": ["manual", "gated"], "default": "manual"}, "gates": {"type": "array", "items": gate},
                               "shadowEvidence": shadow_evidence(True)},
                "if": {"properties": {"mode": {"const": "gated"}}, "required": ["mode"]},
                "then": {"required": ["gates"], "properties": {"gates": {"minItems": 1}}},
            },
            "decisions": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"approve": version_list, "reject": version_list,
                               "delete": {**version_list, "description": "Versions removed for good (never while served); their numbers are never given again."}},
            },
            "versionLabels": {
                "description": "A human label and description per trained version, set in git (audited with the "
                "model's update; shown by versions, status, plans and the API). A version the list leaves out has none.",
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["version"],
                    "anyOf": [{"required": ["label"]}, {"required": ["description"]}],
                    "properties": {
                        "version": {"type": "integer", "minimum": 1},
                        "label": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": "\\S",
                                  "not": {"pattern": "[\\n\\r]"}},
                        "description": {"type": "string"},
                    },
                },
            },
        },
        "if": {"properties": {"stage": {"enum": ["shadow", "challenger", "champion"]}}, "required": ["stage"]},
        "then": {"required": ["lifecycle", "family"], "properties": {"lifecycle": {"const": "active"}}},
    },
)


def route(with_weight):
    props = {
        "model": described(NAME, "A model by name."),
        "family": described(NAME, "A family; its champion's latest approved version (needs version: champion)."),
        "version": {
            "description": "A version number, latest-approved, or champion (with family).",
            "oneOf": [{"type": "integer", "minimum": 1}, {"enum": ["latest-approved", "champion"]}],
        },
    }
    if with_weight:
        props["weight"] = {"type": "integer", "minimum": 0, "maximum": 100, "description": "Percent of traffic; routes sum to 100."}
    return {
        "type": "object",
        "required": ["version"],
        "additionalProperties": False,
        "properties": props,
        "oneOf": [{"required": ["model"]}, {"required": ["family"]}],
        "allOf": [
            {"if": {"required": ["family"]}, "then": {"properties": {"version": {"const": "champion"}}}},
            {"if": {"required": ["model"]}, "then": {"properties": {"version": {"not": {"const": "champion"}}}}},
        ],
    }


serving_target = document(
    "ServingTarget", "Cairn ServingTarget",
    "Which approved version is live for a tenant and surface, with traffic splits and shadows.",
    {
        "type": "object",
        "required": ["tenant", "surface", "routes"],
        "additionalProperties": False,
        "properties": {
            "tenant": NAME,
            "surface": NAME,
            "routes": {
                "type": "array",
                "minItems": 1,
                "items": route(True),
                "description": "Weights sum to 100; one route needs no weight.",
            },
            "shadow": {"type": "array", "items": route(False), "description": "Scored and recorded, never served."},
            "rollbackGuard": {
                "type": "object",
                "required": ["minRequests"],
                "additionalProperties": False,
                "description": "Returns the target to its previous routes when what a promotion put live does worse online.",
                "properties": {
                    "minRequests": {"type": "integer", "minimum": 1, "description": "Requests each compared version must have served first."},
                    "maxRewardDrop": {"type": "number", "minimum": 0, "maximum": 1000, "description": "Largest drop of reward per request (from feedback) below the previous version's."},
                    "maxLatencyP95Ms": {"type": "number", "minimum": 0.001, "maximum": 600000, "description": "Largest served p95 latency, in milliseconds."},
                },
                "anyOf": [{"required": ["maxRewardDrop"]}, {"required": ["maxLatencyP95Ms"]}],
            },
        },
        "if": {"properties": {"routes": {"minItems": 2}}, "required": ["routes"]},
        "then": {"properties": {"routes": {"items": {"required": ["weight"]}}}},
    },
)


model_family = document(
    "ModelFamily", "Cairn ModelFamily",
    "A registry family's ladder: the stages its models climb, one step at a time, and the shadow evidence each step needs.",
    {
        "type": "object",
        "required": ["ladder"],
        "additionalProperties": False,
        "properties": {
            "ladder": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["stage"],
                    "additionalProperties": False,
                    "properties": {"stage": {"enum": ["shadow", "challenger", "champion"]}, "shadowEvidence": shadow_evidence(False)},
                },
            },
        },
    },
)


# JSON has no NaN or infinity, but YAML does (`.nan`, `.inf`), and editors and check-jsonschema
# hand them to the schema as IEEE floats; the decoder refuses them. Every number schema gets
# finite bounds (refusing the infinities) and a rule refusing NaN: NaN passes every numeric
# keyword (each compares false), so "not (≤ 0 and ≥ 1)", which no real number satisfies, is
# exactly "not NaN".
LARGEST = 1.7976931348623157e308
NOT_NAN = {"not": {"allOf": [{"maximum": 0}, {"minimum": 1}]}, "description": "A finite number."}


def finite(node):
    if isinstance(node, dict):
        if node.get("type") == "number":
            if "minimum" not in node and "exclusiveMinimum" not in node:
                node["minimum"] = -LARGEST
            if "maximum" not in node and "exclusiveMaximum" not in node:
                node["maximum"] = LARGEST
            node["not"] = NOT_NAN["not"]
            node.setdefault("description", NOT_NAN["description"])
        for value in node.values():
            finite(value)
    elif isinstance(node, list):
        for value in node:
            finite(value)
    return node


def main():
    check = "--check" in sys.argv
    stale = []
    for kind, schema in [("OutcomeWeights", outcome_weights), ("Template", template), ("Model", model), ("ServingTarget", serving_target),
                         ("ModelFamily", model_family)]:
        path = os.path.join(HERE, file_name(kind))
        text = json.dumps(finite(schema), indent=2) + "\n"
        if check:
            with open(path) as f:
                if f.read() != text:
                    stale.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        print("out of date (run python3 schemas/generate.py): " + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
