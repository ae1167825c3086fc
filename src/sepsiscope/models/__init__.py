"""The networks: the study's ResNet18-based classifier and the convolutional autoencoder."""
