"""relit's Blender extension: scene lights and world HDRI -> relit passes in the artist's scene."""
