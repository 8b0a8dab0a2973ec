"""The command catalogue: one sub-package per pack (`builtin`, `testing`, yours)."""
