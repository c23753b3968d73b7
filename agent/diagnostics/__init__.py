"""Field diagnostics: ``lfr-agent doctor`` checks (``doctor_checks``)."""
