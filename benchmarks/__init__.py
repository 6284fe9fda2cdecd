"""`make bench`: performance figures for issue 6, each measured side by side in one run."""
