"""MovingDigits, the built-in synthetic dataset: events.py draws a sample's latent DigitEvent,
modalities/ renders it (one module per modality, registered in modality_renderers.py), and
dataset.py is the gin-configurable Dataset that loops over the requested modalities."""
