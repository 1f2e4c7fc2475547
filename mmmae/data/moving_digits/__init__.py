"""MovingDigits, the built-in synthetic dataset: events.py draws a sample's latent DigitEvent,
modalities/ renders it (one module per modality, registered in modality_renderers.py), and
dataset.py is the gin-configurable Dataset that loops over the requested modalities;
forgery.py forges half of its clips (appearance or motion) for real/fake detection;
domains.py re-renders clips in a second domain (cross-domain transfer) and joins datasets;
drift.py plays its clips in order as a stream whose look drifts (test-time training);
action_sequences.py makes long videos whose motion direction changes at segment boundaries
(temporal action segmentation)."""
