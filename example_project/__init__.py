"""A small host web app with the gateway mounted at /ai (see README)."""
