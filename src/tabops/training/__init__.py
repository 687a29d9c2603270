"""Training: candidates under cross-validation, threshold choice, held-out metrics and gates."""
