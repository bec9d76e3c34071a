"""Panel views: a generic panel built from an experiment, plus per-method live plots."""
