"""Stage siamese: the shared ResNet-50 trunk and symmetric head that regress the descriptor
score (`train`), its batches of pairs (`batches`) and the model card for people (`model_card`).
"""
