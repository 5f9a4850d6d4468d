"""Evaluating models: the importance-sampled likelihood, the latent space's geometry (active
units, continuity, completeness), figures, and matrix-product FLOPs of a step."""
