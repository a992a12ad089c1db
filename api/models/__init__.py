"""Request and response models, named for their role: `inputs` (what callers send) and
`public` (what the API answers)."""
