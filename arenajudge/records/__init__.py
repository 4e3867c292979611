"""Records on disk, the interface between steps: questions, answers and judgments as JSONL, locks, provenance, archives."""
