"""The old name of app.search.table_profiles, kept only for the importers outside app/ and
tests/ that still use it (tuner_jobs.search.data, baselines and model_card; benchmarks/).
Import from app.search.table_profiles; remove this module once they do."""

from app.search.table_profiles import (
    MISSING_TOKEN,
    category_strings,
    class_label,
    load_training_frame,
    profile_frame,
)

__all__ = [
    "MISSING_TOKEN",
    "category_strings",
    "class_label",
    "load_training_frame",
    "profile_frame",
]
