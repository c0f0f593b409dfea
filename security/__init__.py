"""The security gate: policy-as-code rules, checkov, a secret scanner and one
reviewed registry of suppressions (security/suppressions.toml)."""
