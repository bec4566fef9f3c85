"""Training, evaluation, LR range test, explanations and the distributed plumbing they share."""
