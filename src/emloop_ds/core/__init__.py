"""The emloop-ds library: datasets, configs, streams and downloads; free of CLI concerns."""
