"""Read a dataset's streams: restart passes, cut epochs, and prepare batches ahead of the reader."""
