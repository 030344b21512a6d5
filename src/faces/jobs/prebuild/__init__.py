"""Modules the detection workers' fork server imports (see :func:`faces.jobs.worker_preload`), one per finder:
each makes its finder's models once, before the workers fork, instead of in every worker at start, when both
cores are busiest. Whatever fails here is left to the workers, which load the models themselves and say what
went wrong.
"""
