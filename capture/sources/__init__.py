"""One module per source family; each registers its scheme in ``capture.source.SCHEMES``."""
