"""Pictures of runs (the ``viz`` extra: matplotlib). ``timeline`` draws a trace file's run."""
