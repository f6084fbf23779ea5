"""The audit trail: one row per decision or change, written in the change's transaction."""
