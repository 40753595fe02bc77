"""Capture sets: the manifest contract and a lazy frame reader."""
