"""Stage score: the pair set (`pairs`), each pair's per-descriptor similarity and weighted
score (`similarity`), weights fitted on train pairs (`fit`), the descriptor study (`study`), the
saved scorer for use outside the pipeline (`scorer`) and the stage's metrics (`report`).
"""
