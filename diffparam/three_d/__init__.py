"""Meshes for 3D textures: `mesh` (loading, UV unwrapping), `shapes` (sample meshes), `cameras`,
`raster` (z-buffer rasteriser and texture lookup), `uvmap` (atlas coverage, edge padding), `seams`
(how visible UV seams are) and `export` (OBJ + MTL + PNG, GLB)."""
