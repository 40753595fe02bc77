"""LightRig -> batched inferences -> relit passes (imports torch through core.model)."""
