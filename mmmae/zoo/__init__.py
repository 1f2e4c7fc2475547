"""The model zoo: pretrained directories, the registry of named weights, and converters."""
