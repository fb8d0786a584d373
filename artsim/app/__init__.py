"""The model in users' hands: the Python API (`api`, behind `artsim.load`), the `artsim`
command (`cli`), search among originals (`search`), workspace info and difference maps.
"""
