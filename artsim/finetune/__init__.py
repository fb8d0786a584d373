"""Stage finetune: a ResNet-50 fine-tuned to classify the paintings' style or genre (`train`),
on the classes `labels` allows.
"""
