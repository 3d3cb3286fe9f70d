"""text-embeddings-inference's classifier routes (``POST /predict``, ``POST /``, ``GET /info``)."""
