"""Generation backends, one module each: `style_transfer` (the offline CPU default), `sdxl`
(diffusers SDXL Refiner img2img, loaded lazily) and `importer` (adopt images made elsewhere);
`base` is the contract between the run loop and a backend.
"""
