"""Nuke-style comp graphs over relit passes (bpy-free): evaluated with OpenImageIO,
built as Blender node groups by the add-on, exported as Nuke scripts."""
