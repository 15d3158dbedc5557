"""Dataset uploads: bounded archives, label and layout rules, submit-time fit, per-class metrics."""
