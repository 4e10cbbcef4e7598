"""The training data: paired datasets and their labels, splits, augmentation, sampling, loaders."""
