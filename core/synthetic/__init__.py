"""Blender Cycles as an offline renderer of training data and ground truth.

The only part of ``core`` that imports bpy, always lazily inside functions.
"""
