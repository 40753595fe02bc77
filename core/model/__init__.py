"""The RelightModel family (DifFRelight ``olat`` and SynthLight ``envmap`` modes): configs,
latent codecs, lighting conditioning, training, the RelightPipeline and bundles. Imports torch."""
