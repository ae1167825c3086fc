"""What the networks learned: ``embed`` (t-SNE of the classifier's 128-d features),
``autoencode`` (the 1152-d bottleneck) and ``cluster`` (K-means on either)."""
