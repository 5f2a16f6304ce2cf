"""English->German translation with a sequence-to-sequence Transformer: prepare, train, evaluate, export, translate."""
