"""Evaluation: loading datasets, metrics, and scoring a program on examples."""
