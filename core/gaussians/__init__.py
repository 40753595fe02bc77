"""Dynamic 3D Gaussians: model, rasterisers (gsplat on CUDA, pure torch on CPU), deformation,
K-frame + segment training, renders and PLY export."""
