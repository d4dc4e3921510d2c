"""Download a dataset's files into its data root: fetch, verify, resume, extract, and record what is done."""
