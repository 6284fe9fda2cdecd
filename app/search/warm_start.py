"""The old name of app.search.warm_start_resolution, kept only for the importer outside app/
and tests/ that still uses it (tuner_jobs.search.warm_start). Import from
app.search.warm_start_resolution; remove this module once it does."""

from app.search.warm_start_resolution import WarmStartConfiguration as WarmStartConfiguration
