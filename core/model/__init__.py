"""The RelightModel family (DifFRelight ``olat`` and SynthLight ``envmap`` modes): configs,
latent codecs, lighting conditioning, training, the RelightPipeline and bundles. Imports torch.

relit never reaches a model hub: bundles and base checkpoints are local folders. The hub libraries
are told so before any of them is imported (an environment that says otherwise is overruled), and
every ``from_pretrained`` is local-only besides.
"""

import os

for _flag in ("HF_HUB_OFFLINE", "DIFFUSERS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_flag] = "1"
