"""Model kinds, one file each (`vae`, `ladder`, `autoencoder`, `pca`), the layers they share,
and the one registry (`registry.build(config, image_shape)`) that maps ``config.model`` to them."""
