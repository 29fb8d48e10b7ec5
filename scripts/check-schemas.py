#!/usr/bin/env python3
"""Checks schemas/nc-link/*.schema.json against real payloads: the examples of DESIGN.md §2, the
lab model, and every message of the committed recordings (which the simulator and the platform
produced). Also checks that payloads the decoder refuses are refused by the schemas too.

Run by scripts/test; needs the `jsonschema` package and the `zstd` command."""
import json
import pathlib
import subprocess
import sys

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas" / "nc-link"

KINDS = [
    ("Register/Request", "register-request"),
    ("Register/Response/", "register-response"),
    ("Probe/Version/", "probe-version"),
    ("Probe/Query/Request/", "probe-query-request"),
    ("Probe/Query/Response/", "probe-query-response"),
    ("Query/Request/", "query-request"),
    ("Query/Response/", "query-response"),
    ("Set/Request/", "set-request"),
    ("Set/Response/", "set-response"),
    ("Sample/", "sample"),
]


def schema_for(topic):
    for prefix, name in KINDS:
        if topic.startswith(prefix):
            return name
    raise SystemExit(f"no schema for topic {topic}")


def validator(name):
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def main():
    validators = {name: validator(name) for _, name in KINDS}
    lab_model = json.loads((ROOT / "data" / "nc-link" / "lab-model.json").read_text())
    good = [
        ("Register/Request", {"deviceid": "STRESS_TEST_00000"}),
        ("Register/Response/D", {"code": "OK"}),
        ("Probe/Version/D", {"version": "1.1"}),
        ("Probe/Query/Request/D", {"@id": "r1"}),
        ("Probe/Query/Response/D", {"code": "ok", "probe": lab_model}),
        ("Query/Request/D", {"@id": "r1", "ids": [{"id": "0103502202"}]}),
        ("Query/Response/D", {"@id": "r1", "values": [{"id": "0103502202", "code": "OK", "values": [10.9526]}]}),
        ("Set/Request/D", {"@id": "s", "values": [{"id": "01035430", "params": {"operation": "set_value", "index": 1, "value": 3}}]}),
        ("Set/Response/D", {"@id": "s", "results": [{"id": "01035430", "code": "OK"}]}),
        ("Sample/D/c", {"id": "c", "beginTime": "1700000000000", "data": [{"data": [1, 2]}, {"data": []}]}),
        ("Sample/D/c", {"beginTime": 1700000000000, "interval": 10, "paths": ["a"], "data": [[1, 2]]}),
    ]
    bad = [
        ("Register/Request", {"device": "x"}),
        ("Probe/Query/Response/D", {"code": "ok", "probe": {"devices": [{"configs": [{"id": "c", "type": "SAMPLE_CHANNEL", "sampleInterval": 0, "ids": []}]}]}}),
        ("Query/Response/D", {"values": {"id": 1}}),
        ("Query/Response/D", {"values": [{"code": "OK"}]}),
        ("Sample/D/c", {"beginTime": "soon", "data": []}),
        ("Sample/D/c", {"beginTime": 1, "data": [{"x": 1}]}),
    ]
    failures = 0
    for topic, payload in good:
        errors = list(validators[schema_for(topic)].iter_errors(payload))
        if errors:
            failures += 1
            print(f"FAIL valid {topic}: {errors[0].message}")
    for topic, payload in bad:
        if validators[schema_for(topic)].is_valid(payload):
            failures += 1
            print(f"FAIL accepted invalid {topic}: {json.dumps(payload)[:120]}")
    recorded = 0
    recordings = [r for r in sorted((ROOT / "data" / "recordings").glob("*.jsonl*")) if not r.name.endswith(".windows.jsonl")]
    for recording in recordings:
        raw = recording.read_bytes()
        if recording.suffix == ".zst":
            raw = subprocess.run(["zstd", "-dc"], input=raw, capture_output=True, check=True).stdout
        for line in raw.decode().splitlines():
            message = json.loads(line)
            payload = json.loads(message["payload"])
            errors = list(validators[schema_for(message["topic"])].iter_errors(payload))
            recorded += 1
            if errors:
                failures += 1
                print(f"FAIL {recording.name} {message['topic']}: {errors[0].message}")
    print(f"schemas: {len(good)} examples valid, {len(bad)} invalid payloads refused, {recorded} recorded messages valid"
          if not failures else f"schemas: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
