"""Runs a measures plan: journal, safety guards, parallel lanes, retries, resume."""
