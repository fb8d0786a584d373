"""What the two training stages share: ResNet-50 models and their transforms (`models`),
frozen-trunk features and their cache (`features`, `feature_cache`), the training loop's
recipe and runtime (`training`), rank shares of batches (`batches`) and pair images (`pair_images`).
"""
