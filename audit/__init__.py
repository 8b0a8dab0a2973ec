"""Security checks run by `make audit` (docs/audit.md): dependency advisories and the log scan for secrets."""
