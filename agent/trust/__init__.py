"""Keys, signed documents, activations, sealed envelopes and the audit trail."""
