"""The lab's Ed25519 signing keys: grants, manifests and audit checkpoints are signed with
them, and ``/.well-known/jwks.json`` publishes their public halves."""
