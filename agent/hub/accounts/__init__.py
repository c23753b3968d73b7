"""Console accounts: users with roles, argon2id passwords and TOTP, lock-out after
repeated failures, and login sessions with idle and absolute expiry."""
