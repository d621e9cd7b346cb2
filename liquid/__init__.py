"""liquid: a small encoder-decoder language model for Spanish instructions."""
