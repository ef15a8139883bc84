"""``import beam_cross`` stays light, and the public API is exactly ``__all__``.

Each check runs in a fresh interpreter: the test process itself may already hold TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "tf_keras", "tensorflow_transform", "apache_beam")
# The public API as README documents it: ``beam_cross.<Name>``. A new export is a decision, not an accident.
DOCUMENTED_API = {"Bucketize", "Cross", "CrossFeatures", "CrossingLayer", "DEFAULT_HASH_KEY", "FeatureColumn",
                  "FeatureError", "Hash", "HashedCrossing", "Identity", "LearnCrosses", "Lookup", "all_crosses",
                  "feature_column", "from_feature_columns", "from_feature_space", "hashed_cross", "learned", "suggested_bins"}
LIGHT_MODULES = ("beam_cross", "beam_cross.core.columns", "beam_cross.core.cross", "beam_cross.core.errors", "beam_cross.core.spec",
                 "beam_cross.core.spec_file", "beam_cross.core._fingerprint", "beam_cross.core.transforms", "beam_cross.core.raw_values",
                 "beam_cross.core.lookup", "beam_cross.core.transform_base", "beam_cross.core.generated",
                 "beam_cross.core.learning", "beam_cross.core.quantiles", "beam_cross.core.suggested")


def clean_environment() -> dict:
    # Importing tensorflow_transform in this process sets TF_USE_LEGACY_KERAS; the child starts clean.
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def run_python(code: str) -> dict:
    """Runs ``code`` in a new interpreter at the repo root; its last stdout line is JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True, text=True, timeout=300,
        env=clean_environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_and_dir_load_no_heavy_framework():
    loaded = run_python(f"""
        import json, sys
        import {", ".join(LIGHT_MODULES)}
        import beam_cross
        names = dir(beam_cross)
        all_names = beam_cross.__all__
        assert "CrossFeatures" in names and "HashedCrossing" in names
        beam_cross.hashed_cross([["a"], [1]], 10)
        beam_cross.Cross(["a", "b"], 10).to_json()
        print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})))
    """)
    assert loaded == []


def test_all_is_sorted_and_is_the_public_api():
    found = run_python("""
        import json, types, __future__
        import beam_cross
        public = sorted(
            name for name, value in vars(beam_cross).items()
            if not name.startswith("_")
            and not isinstance(value, (types.ModuleType, __future__._Feature))
        )
        print(json.dumps({"all": beam_cross.__all__, "public": public, "lazy": sorted(beam_cross._LAZY)}))
    """)
    assert found["all"] == sorted(found["all"])
    assert len(set(found["all"])) == len(found["all"])
    assert set(found["all"]) == set(found["public"]) | set(found["lazy"])


def test_all_is_the_documented_api():
    found = run_python("import json, beam_cross; print(json.dumps(beam_cross.__all__))")
    assert set(found) == DOCUMENTED_API


def test_every_public_name_resolves():
    found = run_python("""
        import json
        import beam_cross
        out = {}
        for name in beam_cross.__all__:
            value = getattr(beam_cross, name)
            out[name] = getattr(value, "__module__", None) or type(value).__name__
        print(json.dumps(out))
    """)
    assert found["CrossFeatures"] == "beam_cross.beam.transforms"
    assert found["HashedCrossing"] == "beam_cross.tf.layers"
    assert found["CrossingLayer"] == "beam_cross.tf.crossing_layer"
    assert found["hashed_cross"] == "beam_cross.core.cross"
    assert found["Cross"] == "beam_cross.core.spec"
    assert found["from_feature_columns"] == "beam_cross.tf.feature_columns"
    assert found["from_feature_space"] == "beam_cross.tf.feature_space"
    assert set(found) == set(run_python("import json, beam_cross; print(json.dumps(beam_cross.__all__))"))


def test_unknown_attribute_is_an_attribute_error():
    message = run_python("""
        import json
        import beam_cross
        try:
            beam_cross.no_such_name
        except AttributeError as error:
            print(json.dumps(str(error)))
    """)
    assert message == "module 'beam_cross' has no attribute 'no_such_name'"
