"""A trained run applied to new videos: ``predict`` (files, folders, cameras), ``explain``
(Grad-CAM), ``export`` (ONNX) and the back ends that run the network."""
