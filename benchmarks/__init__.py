"""Benchmarks of vaembed: real labelled data sets, MTEB-style tasks, baselines and runners."""
